"""Consumers that never go blind: cache, disk cache, selection, failover calls."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest
from conftest import FAST_TIMINGS
from helpers import NodeProcess, free_port_pair, meshreg_cmd, wait_until

from meshreg import Client, Instance
from meshreg.client.commands import ForgetRegistrations
from meshreg.errors import CallFailedError, NoInstanceAvailableError

FAST = {"beat_interval": 0.2, "timeout": 2.0, "attempt_timeout": 0.5}


def go_silent(client: Client) -> None:
    """The client stops keeping its instances alive, without deregistering them."""
    done: Future[None] = Future()
    client._agent.submit(ForgetRegistrations(done))
    done.result(5.0)


def test_select_weights_and_none_available(node: NodeProcess) -> None:
    with Client([node.address], **FAST) as c:
        c.register("sel", "10.1.0.1", 1, weight=0.0)
        with pytest.raises(NoInstanceAvailableError, match="sel"):
            c.select("sel")
        c.register("sel", "10.1.0.2", 2, weight=1.0)
        assert {c.select("sel").address for _ in range(50)} == {"10.1.0.2:2"}
        out = subprocess.run(
            meshreg_cmd("select", "sel", "-s", node.address), capture_output=True, text=True
        )
        assert out.returncode == 0 and out.stdout.strip() == "10.1.0.2:2", out.stderr


def test_call_fails_over_to_the_next_instance(node: NodeProcess) -> None:
    # one instance whose port refuses connections, one that accepts
    refused = free_port_pair(1)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    good = listener.getsockname()[1]
    try:
        with Client([node.address], **FAST) as c:
            c.register("svc", "127.0.0.1", refused, weight=1000.0)  # almost always picked first
            c.register("svc", "127.0.0.1", good, weight=0.001)

            def connect(i: Instance) -> int:
                with socket.create_connection((i.ip, i.port), timeout=2):
                    return i.port

            assert c.call("svc", connect) == good
            # the refusing one is avoided for a while: the next call goes straight to good
            assert c.call("svc", connect, retries=0) == good
            c.deregister("svc", "127.0.0.1", good)
            with pytest.raises(CallFailedError) as info:
                c.call("svc", connect)
            assert f"127.0.0.1:{refused}" in str(info.value)
    finally:
        listener.close()


def test_call_fails_over_when_fn_uses_urllib(node: NodeProcess) -> None:
    """urllib raises ``URLError`` (an OSError, not a ConnectionError) for a refused
    connection: ``call()`` handed it to the application, which saw half its calls fail
    for 14 s after a provider's kill -9 (a new user's review, with the README's own
    ``http_get`` example).  The socket error under it is what ``call()`` retries on."""
    import http.server
    import threading
    import urllib.error
    import urllib.request

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    refused = free_port_pair(1)
    try:
        with Client([node.address], **FAST) as c:
            c.register("web", "127.0.0.1", refused, weight=1000.0)  # almost always first
            c.register("web", "127.0.0.1", server.server_address[1], weight=0.001)

            def http_get(i: Instance) -> bytes:
                with urllib.request.urlopen(f"http://{i.address}/", timeout=2) as reply:
                    body: bytes = reply.read()
                    return body

            assert c.call("web", http_get) == b"ok"
            with pytest.raises(urllib.error.URLError):  # the error itself, as before
                http_get(Instance("127.0.0.1", refused))

            def bad_request(i: Instance) -> bytes:  # not a connection error: raised at once
                raise ValueError("no such page")

            with pytest.raises(ValueError, match="no such page"):
                c.call("web", bad_request)
    finally:
        server.shutdown()
        server.server_close()


def test_registry_calls_take_a_group_per_call(node: NodeProcess) -> None:
    """A new user's review: config calls and services() took group=, registry calls did
    not (Nacos's SDK takes groupName per call): two groups needed two clients."""
    seen: list[list[str]] = []
    with Client([node.address], **FAST) as c, Client([node.address], group="billing") as b:
        c.register("pay", "10.3.0.1", 80, group="billing", metadata={"zone": "a"})
        c.register("pay", "10.3.0.2", 80)  # the client's own group: another service
        assert [i.address for i in b.instances("pay")] == ["10.3.0.1:80"]  # in billing
        assert [i.address for i in c.instances("pay", group="billing")] == ["10.3.0.1:80"]
        assert [i.address for i in c.instances("pay")] == ["10.3.0.2:80"]
        assert c.select("pay", group="billing").address == "10.3.0.1:80"
        assert c.call("pay", lambda i: i.port, group="billing") == 80
        c.subscribe("pay", lambda xs: seen.append([i.address for i in xs]), group="billing")
        c.set_instance("pay", "10.3.0.1", 80, weight=3.0, group="billing")
        wait_until(lambda: b.instances("pay")[0].weight == 3.0, 5, what="billing's override")
        c.set_service("pay", metadata={"team": "pay"}, group="billing")
        c.deregister("pay", "10.3.0.1", 80, group="billing")
        wait_until(lambda: b.instances("pay", healthy_only=False) == [], 5, what="deregistered")
        assert seen[0] == ["10.3.0.1:80"] and seen[-1] == []
        c.unsubscribe("pay", group="billing")
        c.register("pay", "10.3.0.3", 80, group="billing")
    # close() deregistered what it registered in either group
    with Client([node.address], **FAST) as c:
        assert c.instances("pay", group="billing", healthy_only=False) == []
        assert c.instances("pay", healthy_only=False) == []


def test_no_listener_is_called_once_close_has_begun(node: NodeProcess) -> None:
    """A new user's review: a client subscribed to a service it registered saw its
    callback run inside its own close() (the deregistration's push)."""
    calls: list[list[str]] = []
    c = Client([node.address], **FAST)
    c.register("self-watched", "10.2.0.1", 80)
    c.subscribe("self-watched", lambda xs: calls.append([i.address for i in xs]))
    wait_until(lambda: calls and calls[-1] == ["10.2.0.1:80"], 5, what="the first callback")
    seen = len(calls)
    with Client([node.address], **FAST) as other:  # the deregistration did happen
        c.close()
        wait_until(lambda: other.instances("self-watched", healthy_only=False) == [], 5,
                   what="the instance deregistered by close()")  # fmt: skip
    assert len(calls) == seen, calls[seen:]


def test_caused_by_follows_a_library_s_wrapping_not_a_suppressed_context() -> None:
    from meshreg.client.client import CONNECTION_ERRORS, _caused_by

    class ConnectError(Exception):  # as httpx's: its own class, raised from the OSError
        pass

    def wrapped(suppress: bool) -> Exception:
        try:
            try:
                raise ConnectionRefusedError(111, "refused")
            except OSError as exc:
                if suppress:
                    raise ConnectError("connect failed") from None
                raise ConnectError("connect failed") from exc
        except ConnectError as outer:
            return outer

    assert _caused_by(wrapped(False), CONNECTION_ERRORS)
    assert not _caused_by(wrapped(True), CONNECTION_ERRORS)
    loop = ValueError("a cycle")
    loop.__context__ = ValueError("b")
    loop.__context__.__context__ = loop
    assert not _caused_by(loop, CONNECTION_ERRORS)


def test_outage_serves_cache_then_redo_and_resubscribe(
    start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    node = start_node(*FAST_TIMINGS)
    cache_dir = tmp_path / "cache"
    seen: list[set[str]] = []
    with (
        Client([node.address], **FAST) as provider,
        Client([node.address], cache_dir=cache_dir, **FAST) as consumer,
    ):
        provider.register("pay", "10.2.0.1", 80)
        consumer.subscribe("pay", lambda xs: seen.append({i.address for i in xs}))
        wait_until(lambda: seen and seen[-1] == {"10.2.0.1:80"})
        assert consumer.select("pay").address == "10.2.0.1:80"
        assert not consumer.instances("pay").from_cache  # a node's
        wait_until(lambda: (cache_dir / "public" / "DEFAULT_GROUP" / "pay.json").exists())
        node.kill()  # every node is gone
        for _ in range(5):
            assert consumer.select("pay").address == "10.2.0.1:80"
            assert [i.address for i in consumer.instances("pay")] == ["10.2.0.1:80"]

        # a new process with no node reachable serves the disk copy
        code = (
            "import sys; from meshreg import Client\n"
            f"c = Client([{node.address!r}], cache_dir={str(cache_dir)!r}, timeout=1.0,"
            " attempt_timeout=0.3)\n"
            "print(c.select('pay').address); listed = c.instances('pay')\n"
            "print(listed.from_cache); c.close(timeout=0.5)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        # the list says it is the disk copy (a new user's review: configs said so, lists not)
        assert out.stdout.split() == ["10.2.0.1:80", "True"]
        assert "disk cache" in out.stderr  # it says so in a log line

        # the node comes back empty: the provider registers again, the watcher resumes
        restarted = start_node(*FAST_TIMINGS, port=node.port)
        with Client([restarted.address]) as fresh:
            wait_until(
                lambda: [i.address for i in fresh.instances("pay")] == ["10.2.0.1:80"],
                timeout=20,
                what="redo of the registration",
            )
            provider.register("pay", "10.2.0.2", 80)
        wait_until(lambda: seen[-1] == {"10.2.0.1:80", "10.2.0.2:80"}, timeout=20)


def test_disk_cache_file_is_written_atomically(tmp_path: Path) -> None:
    from meshreg.client.disk_cache import DiskCache
    from meshreg.model import ServiceKey

    cache = DiskCache(tmp_path)
    key = ServiceKey("public", "DEFAULT_GROUP", "a")
    cache.save(key, [Instance("10.0.0.1", 1)])
    path = cache.path(key)
    assert cache.load(key) is not None
    leftovers = [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []
    path.write_text('{"format": 1, "instances": [')  # a torn file is ignored, not trusted
    assert cache.load(key) is None


def test_operator_drains_an_instance_and_select_respects_it(node: NodeProcess) -> None:
    seen: list[dict[str, bool]] = []
    with (
        Client([node.address], sessions=False, **FAST) as provider,  # per-instance beats
        Client([node.address]) as consumer,
    ):
        provider.register("drain", "10.3.0.1", 1)
        provider.register("drain", "10.3.0.2", 2)
        consumer.subscribe("drain", lambda xs: seen.append({i.address: i.enabled for i in xs}))
        out = subprocess.run(
            meshreg_cmd(
                "instance-set", "drain", "10.3.0.1:1", "--enabled", "false", "-s", node.address
            ),
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        wait_until(lambda: seen and seen[-1] == {"10.3.0.1:1": False, "10.3.0.2:2": True})
        assert {consumer.select("drain").address for _ in range(50)} == {"10.3.0.2:2"}
        consumer.set_instance("drain", "10.3.0.2", 2, weight=5.0)
        assert [i.weight for i in consumer.instances("drain", healthy_only=False)] == [1.0, 5.0]
        # beats keep it drained (only a new registration resets it)
        stats = consumer.stats()
        wait_until(lambda: consumer.stats()["beats_total"] > stats["beats_total"] + 10)
        assert not next(i for i in consumer.instances("drain", False) if i.port == 1).enabled
        out = subprocess.run(
            meshreg_cmd("instance-set", "drain", "10.9.9.9:1", "--weight", "2", "-s", node.address),
            capture_output=True,
            text=True,
        )
        assert out.returncode == 1 and "not registered" in out.stderr


def test_push_empty_protection_needs_a_second_opinion(
    start_node: Callable[..., NodeProcess],
) -> None:
    """End to end (the policy's cases: tests/client/test_client_session_watch.py): two real nodes
    that disagree; A (the consumer's server) pushes "empty", B does not.

    The nodes keep their default health timings: this is about an empty push, not health
    (with ``unhealthy_after`` 0.6 s, a renewal of B's provider held up by a loaded CI
    machine marked it unhealthy on B, and the healthy-only read came back empty: ci-38a,
    1 run in 4,158 tests).  The consumer's server is A (``server_order="listed"``): with
    the default random order, half the runs had B as its server and tested nothing."""
    a = start_node()
    b = start_node()
    seen: list[set[str]] = []
    with (
        Client([a.address], **FAST) as on_a,
        Client([b.address], **FAST) as on_b,
        Client([a.address, b.address], server_order="listed", **FAST) as consumer,
    ):
        on_a.register("guard", "10.4.0.1", 1)
        on_b.register("guard", "10.4.0.1", 1)
        consumer.subscribe("guard", lambda xs: seen.append({i.address for i in xs}))
        wait_until(lambda: seen and seen[-1] == {"10.4.0.1:1"})
        on_a.deregister("guard", "10.4.0.1", 1)  # A now pushes an empty list
        wait_until(lambda: "guard" not in on_a.services())
        # the consumer asked B (straight, not through A), which still lists it: kept
        wait_until(lambda: on_b.stats()["requests"].get("instances", 0) >= 1, what="B asked")
        with Client([a.address]) as check:
            assert check.instances("guard") == []
        assert [i.address for i in consumer.instances("guard")] == ["10.4.0.1:1"]
        assert seen[-1] == {"10.4.0.1:1"}
        # (an empty list that B confirms is taken: test_client_session_watch.py; here A's next
        # empty answer would be held back for YOUNG_NODE_GRACE, A being a "new" node to a
        # view last filled by B, which only made this test wait 15 s)


def test_protection_threshold_returns_every_instance_in_a_mass_failure(
    start_node: Callable[..., NodeProcess],
) -> None:
    node = start_node("--check-interval", "0.05", "--unhealthy-after", "0.4", "--evict-after", "60")
    with Client([node.address], **FAST) as alive, Client([node.address]) as consumer:
        alive.register("prot", "10.5.0.1", 1)
        with Client([node.address], sessions=False, **FAST) as dying:
            dying.register("prot", "10.5.0.2", 2)
            dying.register("prot", "10.5.0.3", 3)
            go_silent(dying)  # stop beating without deregistering
        wait_until(lambda: len(consumer.instances("prot")) == 1, what="two unhealthy")
        out = subprocess.run(
            meshreg_cmd("service-set", "prot", "--protect-threshold", "0.5", "-s", node.address),
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr

        # 1 healthy of 3 is below 0.5: every instance is served, flagged as it is
        def all_three() -> list[Instance] | None:
            xs = consumer.instances("prot")
            return xs if len(xs) == 3 else None

        listing = wait_until(all_three, what="protection in force")
        assert listing.protected
        assert sorted((i.port, i.healthy) for i in listing) == [(1, True), (2, False), (3, False)]
        assert {consumer.select("prot").port for _ in range(200)} == {1, 2, 3}
        fresh = subprocess.run(
            meshreg_cmd("instances", "prot", "--json", "-s", node.address),
            capture_output=True,
            text=True,
        )
        assert len(json.loads(fresh.stdout)) == 3
        consumer.set_service("prot", protect_threshold=0.0)
        wait_until(lambda: len(consumer.instances("prot")) == 1, what="protection off")


def test_a_restarted_empty_node_does_not_blank_out_consumers(
    start_node: Callable[..., NodeProcess],
) -> None:
    node = start_node(*FAST_TIMINGS)
    with Client([node.address], **FAST) as consumer:
        with Client([node.address], sessions=False, **FAST) as provider:
            provider.register("keep", "10.6.0.1", 1)
            wait_until(lambda: len(consumer.instances("keep")) == 1)
            go_silent(provider)  # the provider goes away silently
        node.kill()
        restarted = start_node(*FAST_TIMINGS, port=node.port)  # empty, just started

        def repulled() -> bool:
            with Client([restarted.address]) as probe:
                return probe.stats()["requests"].get("instances", 0) >= 1

        # the consumer has asked the new incarnation...
        wait_until(repulled, timeout=20, what="the consumer to re-pull from the new node")
        # ...and still serves the last list: an empty answer from a node up for seconds
        # may only mean its providers have not registered again yet
        assert [i.address for i in consumer.instances("keep")] == ["10.6.0.1:1"]
        assert consumer.select("keep").address == "10.6.0.1:1"


def test_service_metadata_is_set_pushed_and_kept_by_threshold_changes(node: NodeProcess) -> None:
    with Client([node.address], **FAST) as c, Client([node.address]) as watcher:
        c.register("meta", "10.7.0.1", 1)
        watcher.instances("meta")  # cached: later changes arrive as pushes
        out = subprocess.run(
            meshreg_cmd("service-set", "meta", "--meta", "owner=team-a", "-s", node.address),
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        wait_until(lambda: watcher.instances("meta").service_metadata == {"owner": "team-a"})
        c.set_service("meta", protect_threshold=0.3)  # metadata left as it is
        assert c.instances("meta").service_metadata == {"owner": "team-a"}
        bad = subprocess.run(
            meshreg_cmd("service-set", "meta", "-s", node.address), capture_output=True, text=True
        )
        assert bad.returncode != 0 and "--meta" in bad.stderr
