"""A provider process that ends without close() deregisters anyway (review24 F2).

Real processes: a script that simply ends with a client open (the atexit close), a
SIGTERM (the handler the client installs), and the two cases where the client must
leave SIGTERM alone (``handle_sigterm=False``; a process with its own handler).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import NodeProcess, raw_request, wait_until

from meshreg.client.client import EXIT_CLOSE_BUDGET

PROVIDER = textwrap.dedent(
    """
    import signal, sys, time
    from meshreg import Client
    mode = sys.argv[2]
    if mode == "own-handler":
        signal.signal(signal.SIGTERM, lambda *a: print("own handler", flush=True))
    c = Client([sys.argv[1]], handle_sigterm=(mode != "opt-out"))
    c.register("app", "10.3.0.1", 8080)
    print("registered", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
    if mode == "just-end":
        sys.stdin.readline()  # the test has seen the instance listed
        sys.exit(0)  # no close(): the atexit hook closes the client
    while True:  # until the test's signal
        signal.pause()
    """
)


def listed(node: NodeProcess) -> list[str]:
    r = raw_request(node.port, {"v": 1, "id": 1, "op": "instances", "service": "app"}, 2.0)
    return [f"{i['ip']}:{i['port']}" for i in r["result"]["instances"]]


def provider(node: NodeProcess, mode: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PROVIDER, node.address, mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("registered"), line + proc.stdout.read()
    wait_until(lambda: listed(node) == ["10.3.0.1:8080"], 10, 0.05, "listed")
    return proc, line


@pytest.fixture
def node(tmp_path):  # default timings: an instance left behind stays listed 15 s
    n = NodeProcess("--data-dir", str(tmp_path / "d"))
    try:
        yield n.start()
    finally:
        n.cleanup()


@pytest.mark.timeout(60)
def test_a_script_that_ends_without_close_deregisters(node: NodeProcess) -> None:
    proc, _ = provider(node, "just-end")
    try:
        assert proc.stdin is not None
        proc.stdin.write("end\n")
        proc.stdin.flush()
        assert proc.wait(10) == 0
        wait_until(lambda: listed(node) == [], 3, 0.05, "the instance gone at exit")
    finally:
        proc.kill()
        proc.wait(5)


@pytest.mark.timeout(60)
def test_sigterm_unwinds_and_deregisters_with_status_143(node: NodeProcess) -> None:
    proc, line = provider(node, "default")
    try:
        assert "False" in line  # the client's handler is installed
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 143
        wait_until(lambda: listed(node) == [], 3, 0.05, "the instance gone after SIGTERM")
    finally:
        proc.kill()
        proc.wait(5)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["opt-out", "own-handler"])
def test_the_client_leaves_sigterm_alone_when_asked_or_taken(node: NodeProcess, mode: str) -> None:
    proc, line = provider(node, mode)
    try:
        assert proc.stdout is not None
        if mode == "opt-out":
            assert "True" in line  # SIGTERM left at its default
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == -signal.SIGTERM  # killed, as without a client
        else:
            assert "False" in line
            proc.send_signal(signal.SIGTERM)
            assert proc.stdout.readline().strip() == "own handler"  # theirs, not ours
            assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(5)


MANY = textwrap.dedent(
    """
    import sys
    from meshreg import Client
    clients = [Client([sys.argv[1]], timeout=3.0) for _ in range(6)]
    for n, c in enumerate(clients):
        c.register("app", "10.3.0.%d" % (n + 1), 8080)
    print("registered", flush=True)
    sys.stdin.readline()  # the node is gone: each atexit close finds nobody
    """
)


@pytest.mark.timeout(60)
def test_closing_at_exit_is_bounded_when_no_node_answers(node: NodeProcess) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", MANY, node.address],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().startswith("registered")
        node.kill()
        t0 = time.monotonic()
        proc.stdin.write("end\n")
        proc.stdin.flush()
        assert proc.wait(30) == 0
        took = time.monotonic() - t0
        # EXIT_CLOSE_BUDGET (3 s) for all, plus one close's overrun: not 6 x 1 s or 6 x 3 s
        assert took < EXIT_CLOSE_BUDGET + 2.5, f"{took:.1f}s to exit"
    finally:
        proc.kill()
        proc.wait(5)
