"""review82's low findings (REPORT.md F6, F8-F14), each fixed: what a new user read that
was wrong, twice said, or said in the Python API's words on the command line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Callable

import pytest
from helpers import NodeProcess, free_port_pair, meshreg_cmd, run_cli, wait_until

from meshreg import Client
from meshreg.client.client import CLIENT_TIME_BOUNDS

pytestmark = pytest.mark.timeout(120)


def _nothing_listens() -> str:
    return f"127.0.0.1:{free_port_pair()}"


def test_stats_refuses_two_formats_and_names_a_missing_directory(tmp_path) -> None:
    """F8: ``--json --format text`` printed JSON without a word; ``--output`` into a
    directory that does not exist named a temporary file the user never made."""
    both = run_cli("stats", "--json", "--format", "text", "-s", _nothing_listens())
    assert both.returncode == 2 and "give one" in both.stderr, both
    missing = tmp_path / "no-such-dir"
    out = run_cli("stats", "--format", "prometheus", "--output", str(missing / "m.prom"),
                  "-s", _nothing_listens())  # fmt: skip
    assert out.returncode == 1, out
    assert f"the directory {missing} does not exist" in out.stderr, out.stderr
    assert ".m.prom." not in out.stderr and out.stderr.count("error:") == 1, out.stderr


def test_a_refused_connection_is_said_once() -> None:
    """F9: "X refused the connection (nothing listens there)" twice in one message."""
    out = run_cli("ping", "-s", _nothing_listens())
    assert out.returncode == 1, out
    assert out.stderr.count("refused the connection") == 1, out.stderr


def test_client_side_size_refusal_is_the_clients() -> None:
    """F11: the client's own refusal said "this node's limit"; no node was asked."""
    client = Client([_nothing_listens()], handle_sigterm=False)
    with client as c, pytest.raises(Exception) as raised:
        c.config_publish("big", "x" * (1024 * 1024 + 10))
    said = str(raised.value)
    assert "this client refused it before sending" in said, said
    assert "this node's limit" not in said, said


def test_register_many_names_what_an_item_must_be() -> None:
    """F13: a tuple gave a Python TypeError's text inside the sentence."""
    with Client([_nothing_listens()], handle_sigterm=False) as c:
        failed = c.register_many([("svc3", "10.2.0.1", 80)])  # type: ignore[list-item]
    assert len(failed) == 1
    said = str(failed[0][1])
    assert "got a tuple, not a dict" in said and "indices must be" not in said, said


def test_cli_errors_name_flags_not_python_parameters() -> None:
    """F14: ``Client: beat_interval must be ...`` and ``server_key given without key``."""
    low, high = CLIENT_TIME_BOUNDS["beat_interval"]
    out = run_cli("register", "svc", "10.0.0.1:80", "--beat-interval", "0",
                  "-s", _nothing_listens())  # fmt: skip
    assert out.returncode == 2 and "--beat-interval" in out.stderr, out
    assert f"{low}" in out.stderr and f"{high}" in out.stderr, out.stderr
    out = run_cli("instances", "svc", "-s", _nothing_listens(),
                  env={"MESHREG_SERVER_KEY": "/nonexistent/cluster.pub"})  # fmt: skip
    assert out.returncode == 2, out
    assert "--key (MESHREG_KEY)" in out.stderr and "server_key given" not in out.stderr, out


def test_export_of_an_empty_namespace_warns(node: NodeProcess, tmp_path) -> None:
    """F12: a mistyped ``-n`` wrote an empty archive and said nothing of it."""
    out = run_cli("config", "export", "-n", "nosuchns", "--out", str(tmp_path / "e.zip"),
                  "-s", node.address)  # fmt: skip
    assert out.returncode == 0, out
    assert "warning: namespace 'nosuchns' holds no configs" in out.stderr, out.stderr


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sidecar_stopped_before_any_node_took_it_does_not_say_deregistering() -> None:
    """F10: ``meshreg register`` against no node, then Ctrl-C: "deregistering ..." of an
    instance no node ever took."""
    proc = subprocess.Popen(
        meshreg_cmd("register", "orders", "10.0.0.7:80", "--timeout", "0.5",
                    "-s", _nothing_listens()),  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        wait_until(lambda: lines.append(proc.stderr.readline()) or "trying again" in lines[-1],
                   30, 0, "the sidecar says it keeps trying")  # fmt: skip
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, err
    assert "deregistering" not in err and "stopped before a node took orders" in err, err


def test_first_start_ready_line_names_the_peers_still_catching_up(
    start_cluster: Callable[..., list[NodeProcess]],
) -> None:
    """F6: at a cluster's first start each node logged "caught up: ready ...; members
    <itself>", which reads as a node alone: the peers up but still catching up are named."""
    nodes = start_cluster(3)
    addresses = {n.address for n in nodes}
    for n in nodes:
        line = wait_until(lambda n=n: re.search(r"caught up: ready.*", n.log()), 30, 0.1,
                          f"{n.address} ready")  # fmt: skip
        named = set(re.findall(r"127\.0\.0\.1:\d+", line.group(0)))
        assert named == addresses, (
            f"{n.address}'s ready line names {sorted(named)}, not the 3 nodes up: {line.group(0)}"
        )
