"""Import rules: the layers' dependencies point down (docs: /work/shared/DESIGN.md).

* core is sans-IO: it imports no zmq, socket, os, time, random, threading or asyncio
  (time and randomness are parameters), and nothing from the layers above it (wire,
  transport, runtime, client, security, cli).
* wire builds and parses bytes only: no zmq, nothing from transport, runtime, client, cli.
* No import cycle between the modules of a package, counting the imports made inside
  functions (a lazy import only hides a cycle); ``if TYPE_CHECKING:`` blocks do not count.

Every import statement of every module is read from its AST (module level, inside
functions and classes, ``import x`` and ``from x import y``, relative ones resolved), so
no import escapes by being written inside a function.  A rule the code still breaks is
marked ``xfail(strict=True)`` with the file:line that breaks it: fixing the code makes
the test pass, which strict xfail turns into a failure until the mark is removed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import meshreg

ROOT = Path(meshreg.__file__).parent

SANS_IO_FORBIDDEN = ("zmq", "socket", "os", "time", "random", "threading", "asyncio")
CORE_MAY_NOT_USE = ("meshreg.wire", "meshreg.transport", "meshreg.runtime", "meshreg.client")
CORE_MAY_NOT_USE += ("meshreg.security", "meshreg.cli")
WIRE_MAY_NOT_USE = ("zmq", "meshreg.transport", "meshreg.runtime", "meshreg.client")
WIRE_MAY_NOT_USE += ("meshreg.cli",)

# Rules the code breaks today, each with the file:line that breaks it (none now: issue 11
# moved the request and peer message types into core and parse_peer_message to wire/peer).
KNOWN_BREAKS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every import in ``source``, at any depth, except
    under ``if TYPE_CHECKING:``.  ``from a import b`` yields ``a.b`` as well as ``a``
    (b may be a module); relative imports are resolved against ``module``."""
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base != "__future__":
                found.append((node.lineno, base))
                found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    return imports_of(path.read_text(), module_name(path), path.name == "__init__.py")


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    rel = path.relative_to(ROOT.parent)
    return [
        f"{rel}:{line} imports {name}" for line, name in _imports(path) if _matches(name, prefixes)
    ]


def _params(rule: str, package: str) -> list[object]:
    params: list[object] = []
    for path in _modules(package):
        rel = str(path.relative_to(ROOT))
        reason = KNOWN_BREAKS.get((rule, rel))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(path, id=rel, marks=marks))
    return params


@pytest.mark.parametrize("path", _params("core_io", "core"))
def test_core_is_sans_io(path: Path) -> None:
    assert _violations(path, SANS_IO_FORBIDDEN) == []


@pytest.mark.parametrize("path", _params("core_layer", "core"))
def test_core_imports_no_upper_layer(path: Path) -> None:
    assert _violations(path, CORE_MAY_NOT_USE) == []


@pytest.mark.parametrize("path", _params("wire_layer", "wire"))
def test_wire_imports_no_zmq_runtime_or_client(path: Path) -> None:
    assert _violations(path, WIRE_MAY_NOT_USE) == []


TRANSPORT_MAY_NOT_USE = ("meshreg.runtime", "meshreg.client", "meshreg.cli")


@pytest.mark.parametrize("path", _params("transport_layer", "transport"))
def test_transport_imports_no_runtime_or_client(path: Path) -> None:
    """The transport sits under the runtime: the node loop uses it, never the reverse
    (the ZAP handler and the accept monitor live in transport/)."""
    assert _violations(path, TRANSPORT_MAY_NOT_USE) == []


def import_cycles(package: str) -> list[list[str]]:
    """The cycles among ``meshreg.<package>``'s modules (one per strongly connected
    component of more than one module, or a module importing itself)."""
    prefix = f"meshreg.{package}"
    modules = {module_name(p): p for p in _modules(package)}
    graph = {
        name: sorted({m for _, m in _imports(path) if m in modules and m != prefix})
        for name, path in modules.items()
    }
    # Tarjan's strongly connected components (the graph is small: recursion is fine)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


@pytest.mark.parametrize(
    "package",
    [
        pytest.param(
            p,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BREAKS[("cycles", p)])]
            if ("cycles", p) in KNOWN_BREAKS
            else [],
        )
        for p in ("core", "wire", "client", "runtime", "security", "transport")
    ],
)
def test_no_import_cycle(package: str) -> None:
    assert import_cycles(package) == []


def test_the_walker_sees_every_import() -> None:
    """The rules can fail: imports inside functions, relative ones and ``from`` forms
    are all found; TYPE_CHECKING-only ones are not."""
    source = (
        "from __future__ import annotations\n"
        "import os.path\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import zmq\n"
        "def f():\n"
        "    from ..wire import peer\n"
        "    import time as clock\n"
        "class C:\n"
        "    def g(self):\n"
        "        from . import store\n"
    )
    found = imports_of(source, "meshreg.core.registry")
    names = [n for _, n in found]
    assert "os.path" in names
    assert "zmq" not in names
    assert (7, "meshreg.wire.peer") in found
    assert (8, "time") in found
    assert (11, "meshreg.core.store") in found
    assert _matches("os.path", SANS_IO_FORBIDDEN)
    assert not _matches("osmosis", SANS_IO_FORBIDDEN)


# The configuration center's sans-IO modules (issue 12): core's rules, and no sqlite either
# (configcenter/sqlite_store.py is the one module there that does I/O).
CONFIGCENTER_PURE = ("model.py", "core.py", "replication.py")


@pytest.mark.parametrize("name", CONFIGCENTER_PURE)
def test_configcenter_core_is_sans_io(name: str) -> None:
    path = ROOT / "configcenter" / name
    assert _violations(path, SANS_IO_FORBIDDEN + ("sqlite3",) + CORE_MAY_NOT_USE) == []


# -- core builds no wire maps (issue 11): it answers typed results (core/results) and
# wire/result_maps makes the reply maps.  A function of core annotated to return
# ``dict[str, Any]`` is a wire shape in the making; the ones left, with the reason:
WIRE_MAPS_LEFT: set[tuple[str, str]] = set()  # (module under meshreg/, function)


def wire_maps_built(source: str) -> list[tuple[int, str]]:
    """(line, function) of every function whose return annotation is ``dict[str, Any]``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        returns = getattr(node, "returns", None)
        if returns is None or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if ast.unparse(returns).replace(" ", "").strip("'\"") == "dict[str,Any]":
            found.append((node.lineno, node.name))
    return found


@pytest.mark.parametrize("path", _params("core_maps", "core"))
def test_core_builds_no_wire_maps(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    found = [(line, name) for line, name in wire_maps_built(path.read_text())]
    assert [
        f"{rel}:{line} {name}" for line, name in found if (rel, name) not in WIRE_MAPS_LEFT
    ] == []


def test_the_map_rule_can_fail() -> None:
    source = (
        "from typing import Any\n"
        "def a() -> dict[str, Any]: ...\n"
        "class C:\n"
        "    def b(self) -> dict[str, int]: ...\n"
        "    def c(self) -> 'dict[str,  Any]': ...\n"
    )
    assert [name for _, name in wire_maps_built(source)] == ["a", "c"]
