from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import NodeProcess, free_port_pair, start_all  # noqa: E402

FAST_TIMINGS = ("--check-interval", "0.1", "--unhealthy-after", "0.6", "--evict-after", "1.2")


@pytest.fixture
def started_nodes() -> Iterator[list[NodeProcess]]:
    """Every node a test started through the fixtures below; each is killed at teardown."""
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.cleanup()


@pytest.fixture
def start_node(started_nodes: list[NodeProcess]) -> Callable[..., NodeProcess]:
    """Start real node processes; every one is killed at teardown."""

    def start(
        *extra: str, port: int | None = None, curve: tuple[bytes, bytes, bytes] | None = None
    ) -> NodeProcess:
        node = NodeProcess(*extra, port=port, curve=curve)
        started_nodes.append(node)
        return node.start()

    return start


CLUSTER_CHECK_INTERVAL = 0.2  # s between health sweeps in the test clusters
CLUSTER_UNHEALTHY_AFTER = 3.0  # s
CLUSTER_EVICT_AFTER = 6.0  # s
CLUSTER_TIMINGS = (
    "--check-interval",
    f"{CLUSTER_CHECK_INTERVAL:g}",
    "--unhealthy-after",
    f"{CLUSTER_UNHEALTHY_AFTER:g}",
    "--evict-after",
    f"{CLUSTER_EVICT_AFTER:g}",
    "--peer-timeout",
    "1.0",
)


@pytest.fixture
def start_cluster(started_nodes: list[NodeProcess]) -> Callable[..., list[NodeProcess]]:
    """Start n real nodes that name each other as peers, all at once (all killed at
    teardown)."""

    def start(
        n: int, *extra: str, curve: tuple[bytes, bytes, bytes] | None = None
    ) -> list[NodeProcess]:
        ports = [free_port_pair() for _ in range(n)]
        peers: list[str] = []
        for p in ports:
            peers += ["--peer", f"127.0.0.1:{p}"]
        nodes = [NodeProcess(*CLUSTER_TIMINGS, *peers, *extra, port=p, curve=curve) for p in ports]
        started_nodes.extend(nodes)
        return start_all(nodes)

    return start


@pytest.fixture
def node(start_node: Callable[..., NodeProcess]) -> NodeProcess:
    """One node with sub-second health timings (0.1 s sweep, 0.6 s / 1.2 s)."""
    return start_node(*FAST_TIMINGS)


_STATE_DIR: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    # Node processes keep their configs under $XDG_STATE_HOME (meshreg node's default data
    # directory): one fresh directory per test session, never the user's own.
    import os
    import tempfile

    _STATE_DIR.append(tempfile.mkdtemp(prefix="meshreg-test-state-"))
    os.environ["XDG_STATE_HOME"] = _STATE_DIR[-1]
    _share_bytecode(os.path.join(_STATE_DIR[-1], "pycache"))
    config.addinivalue_line(
        "markers", "chaos: multi-host fault suite in network namespaces (needs root, iproute2)"
    )


def _share_bytecode(prefix: str) -> None:
    """Let the processes the tests start (nodes, CLI runs, benchmarks) share one bytecode
    cache for this session.  Where the environment forbids caches (PYTHONDONTWRITEBYTECODE,
    as on the CI machines), every one of them compiled meshreg's ~100 modules afresh: about
    0.4 s of CPU per process, and the suite starts hundreds (tests/integration/test_cli.py:
    29.5 s of CPU before, 20.0 s after, measured in a pair).  The cache lives under the
    session's state directory, removed at the end, so nothing is left in the checkout."""
    import compileall
    import os

    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return  # caches allowed: Python keeps them itself
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    package = Path(__file__).resolve().parent.parent / "meshreg"
    own_prefix = sys.pycache_prefix
    sys.pycache_prefix = prefix  # compile once, here, into the children's cache
    try:
        compileall.compile_dir(str(package), quiet=1)
    finally:
        sys.pycache_prefix = own_prefix


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    for path in _STATE_DIR:
        shutil.rmtree(path, ignore_errors=True)


# Tests that load the machine on purpose or judge real-time bounds under injected faults
# (the chaos suite, the benchmark smoke runs): under pytest-xdist they form one group, run
# one at a time on one worker, so two never compete for the 2 cores while a bound is
# judged; the simulation, unit and integration tests fill the other workers.  Integration
# tests (real clusters with generous deadlines, checked beside a CPU hog) may run beside
# one of them: grouped with them, the group was ~600 s of one worker and the suite ~60 s
# longer (measured 2026-12-02).
_ONE_AT_A_TIME = ("chaos", "bench", "review38", "review42", "review43", "review44",
                  "review47")  # netns; review47: whole-cluster freezes, 1 s peer timeouts
# single files of a directory otherwise spread: a 3-node cluster fed 200,000 instances
# (both cores for a minute; beside another such test, its reads timed out)
_ONE_AT_A_TIME_FILES = ("review83/test_r83_tenant_burst_leaves_others_served.py",)
ONE_AT_A_TIME_GROUP = "load-and-faults"


def one_at_a_time(nodeid: str) -> bool:
    """Whether a test id (``tests/<dir>/test_x.py::...``) is in the one-at-a-time group."""
    parts = nodeid.split("/", 2)
    if len(parts) != 3 or parts[0] != "tests":
        return False
    return parts[1] in _ONE_AT_A_TIME or f"{parts[1]}/{parts[2].split('::')[0]}" in (
        _ONE_AT_A_TIME_FILES
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist the group first: it is one unit of ~300 s, mostly waiting, on one
    worker; started first, the other worker spends that time on the rest and the two end
    together (sorted last, one worker idled while the other finished the group).  In one
    process (``-n 0``) the group last, so a run shows the fast tests' progress at once."""
    first = hasattr(config, "workerinput")  # this process is an xdist worker
    items.sort(key=lambda item: one_at_a_time(item.nodeid) != first)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with the group decided here, by the test's directory.

    Not with the ``xdist_group`` mark: xdist passes a mark to its scheduler by appending
    ``@group`` to the test id on the worker, which pytest 9.2 ignores (the id is no longer
    stored where xdist writes it; pytest-dev/pytest-xdist#1386), so the cluster tests ran
    on both workers at once, silently.  tests/test_xdist_groups.py checks the grouping."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class LoadAndFaultsOneAtATime(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return ONE_AT_A_TIME_GROUP if one_at_a_time(nodeid) else nodeid

    return LoadAndFaultsOneAtATime(config, log)
