"""The client's policies are sans-IO, and its loop reads the clock in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import meshreg.client

CLIENT = Path(meshreg.client.__file__).parent
SANS_IO = ("session.py", "messages.py", "cache.py")
FORBIDDEN = ("zmq", "socket", "os", "time", "random", "threading", "asyncio", "concurrent")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("name", SANS_IO)
def test_the_client_policies_import_no_io(name: str) -> None:
    bad = {m for m in imported(CLIENT / name) if m.split(".")[0] in FORBIDDEN}
    assert not bad, f"meshreg/client/{name} imports {sorted(bad)}: it must stay sans-IO"


def test_the_loop_reads_the_clock_in_one_place_and_dispatches_no_string() -> None:
    tree = ast.parse((CLIENT / "agent.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    clock_reads = [
        n
        for n in calls
        if isinstance(n.func, ast.Attribute)
        and n.func.attr in ("_clock", "monotonic", "time", "perf_counter")
    ]
    assert len(clock_reads) == 1, [ast.unparse(n) for n in clock_reads]
    dispatch = [
        n
        for n in calls
        if isinstance(n.func, ast.Name)
        and n.func.id == "getattr"
        and not isinstance(n.args[1], ast.Constant)
    ]
    assert not dispatch, [ast.unparse(n) for n in dispatch]
