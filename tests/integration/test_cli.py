"""The ``meshreg`` command line against real node processes."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import NodeProcess, free_port_pair, meshreg_cmd, raw_request, run_cli, wait_until

from meshreg import Client
from meshreg.errors import NoInstanceAvailableError


def run(
    *args: str, timeout: float = 20.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        meshreg_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


class LineReader:
    """Reads a process's stdout lines on a thread, so tests can wait with a deadline."""

    def __init__(self, proc: subprocess.Popen[str], name: str = "stdout") -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        stream = getattr(proc, name)
        assert stream is not None
        threading.Thread(target=lambda: [self.lines.put(x) for x in stream], daemon=True).start()

    def next(self, timeout: float = 10.0) -> str:
        return self.lines.get(timeout=timeout)


def test_register_sidecar_lists_and_deregisters_on_sigterm(node: NodeProcess) -> None:
    sidecar = subprocess.Popen(
        meshreg_cmd(
            "register",
            "web",
            "10.2.0.1:8000",
            "--meta",
            "zone=b",
            "--weight",
            "3",
            "-s",
            node.address,
            "--beat-interval",
            "0.2",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def listed() -> list[dict]:
            out = run_cli("instances", "web", "--json", "-s", node.address)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout)

        found = wait_until(listed, what="sidecar registration")
        assert found == [
            {
                "ip": "10.2.0.1",
                "port": 8000,
                "cluster": "DEFAULT",
                "weight": 3.0,
                "enabled": True,
                "healthy": True,
                "metadata": {"zone": "b"},
            }
        ]
        assert json.loads(run_cli("services", "--json", "-s", node.address).stdout) == ["web"]
        text = run_cli("instances", "web", "-s", node.address).stdout
        assert "10.2.0.1:8000" in text and "zone=b" in text
        sidecar.terminate()
        assert sidecar.wait(10) == 0
        assert listed() == []
    finally:
        sidecar.kill()
        sidecar.wait(5)


def test_an_empty_list_is_said_on_stderr(node: NodeProcess) -> None:
    """review24 note: ``meshreg instances`` printed nothing at all for an empty service."""
    out = run_cli("instances", "nosuch", "-s", node.address)
    assert out.returncode == 0 and out.stdout == ""
    assert "no instance of nosuch (namespace public, group DEFAULT_GROUP)" in out.stderr
    with Client([node.address]) as c:
        c.register("drained", "10.3.0.5", 80, enabled=False)
        out = run_cli("instances", "drained", "-s", node.address)
        assert out.stdout == "" and "1 unhealthy or disabled: --all lists them" in out.stderr
        assert "10.3.0.5:80" in run_cli("instances", "drained", "--all", "-s", node.address).stdout


def test_instances_and_select_filter_by_clusters_and_metadata(node: NodeProcess) -> None:
    """review24 note: no multi-cluster or metadata filter in ``instances()`` or
    ``meshreg instances``/``select`` (only one ``--cluster`` in ``select``)."""
    with Client([node.address]) as c:
        c.register("pay", "10.4.0.1", 80, cluster="A", metadata={"zone": "a"})
        c.register("pay", "10.4.0.2", 80, cluster="B", metadata={"zone": "b"})
        c.register("pay", "10.4.0.3", 80, cluster="C", metadata={"zone": "a", "v": "2"})
        c.register("pay", "10.4.0.4", 80, cluster="A", metadata={"zone": "b"}, enabled=False)
        assert {i.ip for i in c.instances("pay", clusters=["A", "B"])} == {"10.4.0.1", "10.4.0.2"}
        assert {i.ip for i in c.instances("pay", clusters="C")} == {"10.4.0.3"}
        zone_a = c.instances("pay", metadata={"zone": "a"})
        assert {i.ip for i in zone_a} == {"10.4.0.1", "10.4.0.3"}
        every = c.instances("pay", healthy_only=False, clusters=["A"], metadata={"zone": "b"})
        assert [i.ip for i in every] == ["10.4.0.4"] and every.revision > 0
        assert c.select("pay", cluster=["B", "C"], metadata={"zone": "a"}).ip == "10.4.0.3"
        none = "in clusters 'A', 'B' with metadata v=2"
        with pytest.raises(NoInstanceAvailableError, match=none):
            c.select("pay", cluster=["A", "B"], metadata={"v": "2"})
        assert c.call("pay", lambda i: i.ip, cluster="A", metadata={"zone": "a"}) == "10.4.0.1"

        def ips(*args: str) -> tuple[list[str], str]:
            out = run_cli("instances", "pay", *args, "-s", node.address)
            assert out.returncode == 0, out.stderr
            return sorted(line.split()[0] for line in out.stdout.splitlines()), out.stderr

        assert ips("--cluster", "A", "--cluster", "C")[0] == ["10.4.0.1:80", "10.4.0.3:80"]
        assert ips("--meta", "zone=a", "--meta", "v=2")[0] == ["10.4.0.3:80"]
        assert ips("--all", "--cluster", "A", "--meta", "zone=b")[0] == ["10.4.0.4:80"]
        listed, said = ips("--cluster", "A", "--meta", "zone=b")
        assert listed == [] and "in cluster A with metadata zone=b; 1 unhealthy or disabled" in said
        listed, said = ips("--cluster", "Z")
        assert listed == [] and "in cluster Z; 4 registered without that filter" in said
        out = run_cli("select", "pay", "--cluster", "B", "--cluster", "C", "--meta", "zone=b",
                      "-s", node.address)  # fmt: skip
        assert out.returncode == 0 and out.stdout.strip() == "10.4.0.2:80", out.stderr
        out = run_cli("instances", "pay", "--meta", "zone", "-s", node.address)
        assert out.returncode != 0 and "expected key=value" in out.stderr


def test_a_command_against_an_address_where_nothing_listens_says_so_at_once() -> None:
    """review24 note: ``meshreg deregister`` waited 6 s (its read, then its write, 3 s
    each) to say that no node answered at an address refusing connections; the message
    said "no reply within 3s".  One-shot commands now fail at the refusal, saying so (the
    message is only made there: no time-out passes)."""
    address = f"127.0.0.1:{free_port_pair()}"  # nothing listens
    for args in (("deregister", "x", "10.0.0.1:80"), ("instances", "x"), ("config", "get", "x")):
        out = run_cli(*args, "-s", address, "--timeout", "30")
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        said = out.stderr
        assert f"{address} refused the connection (nothing listens there)" in said, said
        assert "never left this client" in said and "is `meshreg node` running there?" in said


def test_a_sidecar_started_before_any_node_waits_for_one(started_nodes) -> None:
    """review20: the quick start's sidecar exited 1 after 3 s when no node answered yet
    (and said the registration "may have been applied"); it now says so and tries again
    until a node answers, then beats as ever."""
    port = free_port_pair()
    address = f"127.0.0.1:{port}"
    sidecar = subprocess.Popen(
        meshreg_cmd("register", "late", "10.2.0.9:8000", "-s", address, "--timeout", "1",
                    "--beat-interval", "0.2"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    reader = LineReader(sidecar, "stderr")
    try:
        seen: list[str] = []
        while not any("trying again" in x for x in seen):  # (log lines come too)
            seen.append(reader.next(15))
        said = next(x for x in seen if "trying again" in x)
        assert "never left this client" in said, said
        node = NodeProcess(port=port)
        started_nodes.append(node)
        node.start()
        wait_until(
            lambda: "10.2.0.9" in run_cli("instances", "late", "-s", address).stdout,
            15, 0.2, "the sidecar registered once the node answered",
        )  # fmt: skip
        sidecar.terminate()
        rc = sidecar.wait(10)
        said_all = seen + [reader.next(1) for _ in range(reader.lines.qsize())]
        assert rc == 0, said_all
    finally:
        sidecar.kill()
        sidecar.wait(5)


def test_a_sidecar_stopped_before_any_node_answered_exits_0_at_once() -> None:
    """review61 F4: stopped while no node had ever answered, the sidecar waited its whole
    --timeout for a deregister no node could take, printed an error and exited 1 (a
    systemd unit stopped during an outage ended "failed").  Its register never left the
    client: there is nothing to undo."""
    address = f"127.0.0.1:{free_port_pair()}"  # nothing listens there
    sidecar = subprocess.Popen(
        meshreg_cmd("register", "never", "10.2.0.8:8000", "-s", address, "--timeout", "1"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    reader = LineReader(sidecar, "stderr")
    try:
        seen: list[str] = []
        while not any("trying again" in x for x in seen):
            seen.append(reader.next(15))
        sidecar.terminate()
        rc = sidecar.wait(10)
        said = seen + [reader.next(1) for _ in range(reader.lines.qsize())]
        assert rc == 0, said
        assert not any("error" in x for x in said), said
    finally:
        sidecar.kill()
        sidecar.wait(5)


def test_deregister_command(node: NodeProcess) -> None:
    with Client([node.address]) as c:
        c.register("api", "10.3.0.1", 80)
        out = run_cli("deregister", "api", "10.3.0.1:80", "-s", node.address)
        assert out.returncode == 0, out.stderr
        assert "deregistered api 10.3.0.1:80" in out.stdout  # the outcome: stdout
        assert c.instances("api") == []
    # an instance that is not registered: idempotent (rc 0), and said so
    out = run_cli("deregister", "api", "10.3.0.9:80", "-s", node.address)
    assert out.returncode == 0, out.stderr
    assert "nothing to deregister: api 10.3.0.9:80 (cluster DEFAULT) was not listed" in out.stdout


def test_watch_json_prints_one_line_per_change(node: NodeProcess) -> None:
    watcher = subprocess.Popen(
        meshreg_cmd("watch", "feed", "--json", "-s", node.address),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    reader = LineReader(watcher)
    try:
        first = json.loads(reader.next())
        assert first["service"] == "feed" and first["instances"] == []
        with Client([node.address]) as c:
            c.register("feed", "10.4.0.1", 1)
            line = json.loads(reader.next())
            assert [i["ip"] for i in line["instances"]] == ["10.4.0.1"]
            assert line["revision"] > first["revision"]
            c.register("feed", "10.4.0.2", 1)
            line2 = json.loads(reader.next())
            assert len(line2["instances"]) == 2 and line2["revision"] > line["revision"]
        # the client closed: its deregistrations are pushed too
        while True:
            line3 = json.loads(reader.next())
            if line3["instances"] == []:
                break
    finally:
        watcher.terminate()
        watcher.wait(10)


def test_env_var_selects_server_and_stats_json(node: NodeProcess) -> None:
    out = run_cli("stats", "--json", env={"MESHREG_SERVERS": node.address})
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    for key in (
        "uptime",
        "services",
        "instances",
        "requests",
        "beats_per_second",
        "errors",
        "subscribers",
    ):
        assert key in stats
    assert stats["address"] == node.address
    human = run_cli("stats", "-s", node.address).stdout
    assert "beats/s" in human and "instances" in human
    # two formats asked for (review54: JSON was printed without a word)
    both = run_cli("stats", "--json", "--format", "prometheus", "-s", node.address)
    assert both.returncode == 2 and "give one" in both.stderr and both.stdout == "", both
    assert "sessions        0 holding 0 instances" in human
    # the process's usage (meshreg has no HTTP a process exporter could scrape)
    usage = stats["process"]
    assert usage["resident_bytes"] > 10 * 2**20 and usage["open_fds"] > 3, usage
    assert usage["threads"] >= 2 and usage["cpu_seconds"] > 0, usage  # libzmq's I/O thread
    assert re.search(r"process +\d+ MB resident, [\d.]+ s CPU, \d+ descriptors open", human), human


def test_server_given_before_the_command(node: NodeProcess) -> None:
    """``meshreg -s X COMMAND`` (etcdctl --endpoints, consul -http-addr users write it so):
    it beats MESHREG_SERVERS, and the command's own -s beats it; nested commands too."""
    out = run_cli("-s", node.address, "stats", "--json", env={"MESHREG_SERVERS": "127.0.0.1:1"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["address"] == node.address
    out = run_cli("-s", "127.0.0.1:1", "stats", "--json", "-s", node.address)
    assert out.returncode == 0, out.stderr
    wrong = run_cli("-s", "127.0.0.1:1", "config", "get", "x", "-s", "127.0.0.1:1")
    assert wrong.returncode != 0 and "127.0.0.1:1" in wrong.stderr
    absent = run_cli("-s", node.address, "config", "get", "never-published")
    assert absent.returncode != 0 and "refused the connection" not in absent.stderr


def test_unreachable_node_is_one_line_error_and_nonzero_exit() -> None:
    port = free_port_pair()
    start = time.monotonic()
    out = run("instances", "orders", "-s", f"127.0.0.1:{port}", "--timeout", "1")
    elapsed = time.monotonic() - start
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert elapsed < 15  # bounded; the budget was 1 s plus process start


def test_bad_address_argument_is_reported() -> None:
    out = run("register", "svc", "nonsense:port")
    assert out.returncode != 0
    assert "port" in out.stderr


def test_node_port_in_use_fails_with_clear_message(node: NodeProcess) -> None:
    out = run("node", "--port", str(node.port), timeout=20)
    assert out.returncode != 0
    assert f"127.0.0.1:{node.port}" in out.stderr and "in use" in out.stderr


def test_node_reads_toml_config_and_flags_override(tmp_path: Path) -> None:
    port = free_port_pair()
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        f'[node]\nhost = "127.0.0.1"\nport = {port}\n\n'
        "[health]\ncheck_interval = 1.5\nunhealthy_after = 4.0\nevict_after = 9.0\n"
    )
    node = NodeProcess("--config", str(cfg), "--evict-after", "12", port=port)
    try:
        node.start()
        stats = raw_request(port, {"v": 1, "id": 3, "op": "stats"})["result"]
        assert stats["timings"] == {
            "check_interval": 1.5,
            "unhealthy_after": 4.0,
            "evict_after": 12.0,
        }
    finally:
        node.cleanup()


def refused(monkeypatch: pytest.MonkeyPatch, *args: str) -> subprocess.CompletedProcess[str]:
    """``meshreg node ARGS`` for a configuration the node must refuse, in this process
    (helpers.run_cli: no interpreter start per case).  The node's runtime is replaced by
    one that fails the test if it is ever built: a configuration accepted by mistake must
    not bind and serve here.  A refusal is a one-line error, never a traceback."""

    class Accepted:
        def __init__(self, *a: object, **kw: object) -> None:
            raise AssertionError(f"meshreg node {args} accepted its configuration")

    monkeypatch.setattr("meshreg.runtime.node.NodeRuntime", Accepted)
    out = run_cli("node", *args)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def test_node_rejects_bad_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[health]\nunhealthy_after = 30\nevict_after = 10\n")
    out = refused(monkeypatch, "--config", str(cfg))
    assert out.returncode != 0 and "evict_after" in out.stderr
    cfg.write_text("[nodes]\n")
    out = refused(monkeypatch, "--config", str(cfg))
    assert out.returncode != 0 and "unknown table" in out.stderr


def test_bad_config_values_are_one_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "bad.toml"
    for text, needle in [
        ("[node]\nport = 1.5\n", "port"),
        ('[node]\nport = "abc"\n', "port"),
        ('[node]\nlog_level = "LOUD"\n', "log_level"),
        ("node = 5\n", "[node]"),
        ('[health]\ncheck_interval = "x"\n', "check_interval"),
    ]:
        cfg.write_text(text)
        out = refused(monkeypatch, "--config", str(cfg))
        assert out.returncode != 0
        assert needle in out.stderr and "Traceback" not in out.stderr, out.stderr
    cfg.write_bytes(b"\xff\xfe[node]\n")
    out = refused(monkeypatch, "--config", str(cfg))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    out = refused(monkeypatch, "--check-interval", "inf")
    assert out.returncode != 0 and "finite" in out.stderr


def test_unresolvable_server_is_one_line_error() -> None:
    """One line, said at once, not after the --timeout (review45 F5: it waited it out and
    asked whether a node ran there)."""
    out = run("services", "-s", "nosuchhost.invalid:7800", "--timeout", "20")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "nosuchhost.invalid" in lines[0], out.stderr
    assert "cannot resolve the server name(s) nosuchhost.invalid:7800" in lines[0], lines
    assert "within 20s" not in lines[0], lines  # not a time-out


def test_cluster_names_a_listed_peer_never_heard_as_such(
    start_node: Callable[..., NodeProcess],
) -> None:
    """review15 F6: a configured peer not heard from yet has no id; the table said ""
    (an empty first column).  The JSON keeps "" (PROTOCOL.md 2.10); the table says so."""
    silent = f"127.0.0.1:{free_port_pair()}"  # nothing runs there
    node = start_node("--peer", silent)
    shown = run_cli("cluster", "-s", node.address)
    assert shown.returncode == 0, shown.stderr
    (row,) = [line for line in shown.stdout.splitlines() if silent in line]
    assert row.split()[:3] == ["(never", "heard)", silent], shown.stdout
    listed = json.loads(run_cli("cluster", "--json", "-s", node.address).stdout)
    assert [m["id"] for m in listed["members"] if m["address"] == silent] == [""]


def test_ping_does_not_call_a_node_that_does_not_say_ready() -> None:
    """review41 F2: a node of an older version sends no ``ready`` in its ping reply;
    ``meshreg ping`` called it ready while its peers held it out after a rollback, and
    nothing said it was older. Now ping reads its readiness from its ``cluster`` view and
    says it is an older version (tests/review41 runs it against a real older node)."""
    from meshreg import cli

    older = {"epoch": 7, "version": "0.1.0", "address": "127.0.0.1:7800"}
    assert cli._readiness(older) == cli.OLDER_NODE  # (ping asks its cluster view first)
    assert cli._readiness({**older, "ready": True}) is None
    assert "catching up" in (cli._readiness({**older, "ready": False}) or "")
