"""What a client and the CLI load at start: none of the node's modules.

Every ``meshreg`` command and every ``from meshreg import Client`` pays at interpreter
start for the modules it imports; the node's (its Distro state machine, store, peer
protocol, config replication, ACL) cost a client ~0.2 s of CPU for nothing
(bench/startup.py measures it).  Each case imports in a fresh interpreter and lists the
``meshreg`` modules loaded: a structural check, no timing.  A module-level import of a
node module on the client's path (directly or through a module it imports) fails it;
the fix is the import where the node needs it, or a type in a lighter module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import meshreg

TREE = Path(meshreg.__file__).parent.parent

# The node's modules (prefixes: a package covers its modules).
NODE_ONLY = (
    "meshreg.runtime",
    "meshreg.config",  # the node's settings (the client reads meshreg.addresses)
    "meshreg.security",  # keys are loaded only by a client given a key file
    "meshreg.wire.peer",
    "meshreg.wire.config_peer",
    "meshreg.wire.result_maps",
    "meshreg.wire.batching",
    "meshreg.wire.config_replies",
    "meshreg.wire.envelope",
)
# Of the core and the configuration center, the client uses these alone: the rendezvous
# hash (to send to the owner), the request types and stamps its own checks parse into
# (wire/messages), and the configs' keys and limits.
CLIENT_USES = {
    "meshreg.core",
    "meshreg.core.mapping",
    "meshreg.core.requests",
    "meshreg.core.versions",
    "meshreg.configcenter",
    "meshreg.configcenter.model",
}


def node_only(name: str) -> bool:
    if any(name == p or name.startswith(p + ".") for p in NODE_ONLY):
        return True
    family = name.split(".")[:2]
    return family in (["meshreg", "core"], ["meshreg", "configcenter"]) and name not in CLIENT_USES


def loaded_after(code: str) -> list[str]:
    """The ``meshreg`` modules a fresh interpreter holds after running ``code``, with this
    tree first on its path (checked)."""
    probe = (
        f"{code}\nimport json, sys, meshreg\n"
        "print(json.dumps([meshreg.__file__, sorted(m for m in sys.modules"
        " if m == 'meshreg' or m.startswith('meshreg.'))]))"
    )
    env = {**os.environ, "PYTHONPATH": str(TREE)}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=TREE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    where, modules = json.loads(done.stdout.splitlines()[-1])
    assert Path(where).parent.parent == TREE, f"ran {where}, not this tree"
    return list(modules)


@pytest.mark.parametrize(
    "code",
    [
        "from meshreg import Client",
        "from meshreg.client import Client",
        "import meshreg; meshreg.Client",
    ],
)
def test_the_client_loads_no_node_module(code: str) -> None:
    modules = loaded_after(code)
    assert "meshreg.client.client" in modules  # the client itself was loaded
    assert [m for m in modules if node_only(m)] == []


def test_the_cli_loads_neither_client_nor_node_before_a_command_runs() -> None:
    """``meshreg --help`` and every command start from ``import meshreg.cli``: each
    command imports the client, the node or the archive code when it runs."""
    modules = loaded_after("import meshreg.cli")
    assert "meshreg.cli_config" in modules
    late = ("meshreg.client.client", "meshreg.client.agent", "meshreg.client.config_archive")
    assert [m for m in modules if node_only(m) or m in late] == []


def test_a_client_command_loads_no_node_module() -> None:
    """``meshreg instances``' imports, without a node: the client and its request checks."""
    modules = loaded_after(
        "import meshreg.cli\n"
        "from meshreg.client.client import Client\n"
        "Client._validate('instances', {'namespace': 'public', 'group': 'G', 'service': 's'})\n"
        "Client._config_check('config_get', {'data_id': 'd', 'namespace': 'public',"
        " 'group': 'G'})"
    )
    assert "meshreg.wire.messages" in modules  # the checks ran
    assert [m for m in modules if node_only(m)] == []


def test_the_rule_can_fail() -> None:
    """Every name above is a module, and the node's runtime loads them: the check sees
    what it is meant to see."""
    for name in [*NODE_ONLY, *CLIENT_USES]:
        assert importlib.util.find_spec(name) is not None, name
    modules = loaded_after("import meshreg.runtime.node")
    for name in ("meshreg.core.distro", "meshreg.wire.peer", "meshreg.configcenter.replication"):
        assert name in modules and node_only(name)
    assert not node_only("meshreg.configcenter.model") and node_only("meshreg.config")


@pytest.mark.parametrize("module", ["meshreg", "meshreg.cli"])
def test_the_cli_runs_as_a_module(module: str) -> None:
    """``python -m meshreg.cli`` ran the module twice (as ``__main__``, then as
    ``meshreg.cli`` for its sub-commands) and stopped on a circular import."""
    out = subprocess.run(
        [sys.executable, "-m", module, "config", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=TREE,
        env={**os.environ, "PYTHONPATH": str(TREE)},
    )
    assert out.returncode == 0, out.stderr
    assert "gray" in out.stdout
