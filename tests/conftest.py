from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

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


# Tests that start real nodes under real load and time (multi-node integration, the chaos
# suite, the benchmark smoke runs): under pytest-xdist they form one group, run one at a
# time on one worker, so two clusters never compete for the 2 cores while a timeout runs;
# the CPU-bound simulation and unit tests fill the other worker.
_ONE_AT_A_TIME = ("integration", "chaos", "bench")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The benchmark smoke tests and the chaos suite (tests/bench, tests/chaos: minutes of
    real load each) run last, so a run shows the fast tests' progress at once (the sort is
    stable: the rest keep their order)."""
    items.sort(key=lambda item: item.path.parent.name in ("bench", "chaos"))
    for item in items:
        if item.path.parent.name in _ONE_AT_A_TIME:
            item.add_marker(pytest.mark.xdist_group("real-clusters"))
