"""A client facing a node that answers with garbage (issue 10: M8, L4).

The "node" here is a ROUTER socket in the test, on a free loopback port: it answers
writes and pings properly and the op under test with whatever the test gives it.
The client must keep beating and serving, and report garbage as garbage.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
from helpers import HOST, free_port_pair, meshreg_cmd, wait_until

from meshreg import Client
from meshreg.client.commands import NoteWrite
from meshreg.client.disk_cache import DiskCache
from meshreg.errors import ClientClosedError, MeshregError, RemoteProtocolError
from meshreg.model import Instance, ServiceKey

Answer = Callable[[dict[str, Any]], "list[bytes] | Any"]
# per-instance beats: these tests count the beats a hostile node receives (sessions: below)
FAST = {"beat_interval": 0.1, "timeout": 1.5, "attempt_timeout": 0.5, "sessions": False}


class FakeNode:
    """Answers requests on 127.0.0.1:port from a thread; ``answers[op]`` overrides an op:
    it returns a result (sent in an ok reply) or ``RawFrames`` (sent as they are)."""

    def __init__(self) -> None:
        self.port = free_port_pair(2)
        self.address = f"{HOST}:{self.port}"
        self.answers: dict[str, Answer] = {}
        self.seen: Counter[str] = Counter()
        self.beats: Counter[str] = Counter()  # service -> beats received
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ctx = zmq.Context()
        self._router = self._ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.bind(f"tcp://{HOST}:{self.port}")
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def count(self, op: str) -> int:
        with self._lock:
            return self.seen[op]

    def beats_for(self, service: str) -> int:
        with self._lock:
            return self.beats[service]

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(20):
                continue
            frames = self._router.recv_multipart()
            envelope, body = frames[:-1], frames[-1]
            req = msgpack.unpackb(body, raw=False)
            op = req["op"]
            with self._lock:
                self.seen[op] += 1
                if op == "beat":
                    self.beats[req["service"]] += 1
            answer = self.answers.get(op)
            result = answer(req) if answer is not None else self._normal(op)
            if isinstance(result, RawFrames):
                self._router.send_multipart(envelope[:1] + result.frames)
                continue
            reply = {"v": 1, "id": req["id"], "ok": True, "result": result}
            self._router.send_multipart(envelope + [msgpack.packb(reply)])
        self._router.close(linger=0)
        self._ctx.term()

    def _normal(self, op: str) -> Any:
        if op == "ping":
            return {"epoch": 7, "version": "0.1.0", "address": self.address}
        if op == "cluster":
            return {"node": "fake", "ready": True, "members": [self.member("fake")]}
        return None  # register, beat, deregister

    def member(self, ident: Any, address: Any = None, state: str = "up") -> dict[str, Any]:
        return {
            "id": ident,
            "address": self.address if address is None else address,
            "state": state,
            "self": ident == "fake",
            "services": 0,
            "instances": 0,
            "lag": 0,
            "last_heard": 0.0,
        }

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class RawFrames:
    def __init__(self, *frames: bytes) -> None:
        self.frames = list(frames)


@pytest.fixture
def fake() -> Iterator[FakeNode]:
    node = FakeNode()
    yield node
    node.close()


def cluster_views(fake: FakeNode) -> dict[str, Answer]:
    """Cluster replies that broke the client's I/O thread, or could have."""
    good = fake.member("fake")
    return {
        "non-string id": lambda r: {"node": "x", "ready": True, "members": [good, fake.member(5)]},
        "integer ids": lambda r: {
            "node": "x",
            "ready": True,
            "members": [fake.member(1), fake.member(2)],
        },
        "list id": lambda r: {"node": "x", "ready": True, "members": [good, fake.member([1])]},
        "unresolvable address": lambda r: {
            "node": "x",
            "ready": True,
            "members": [good]
            + [fake.member(f"m{i}", f"no-such-host-{i}.invalid:7800") for i in range(4)],
        },
        "address not a string": lambda r: {
            "node": "x",
            "ready": True,
            "members": [good, fake.member("b", 12345)],
        },
        "address with a space": lambda r: {
            "node": "x",
            "ready": True,
            "members": [good, fake.member("b", "a b:7800")],
        },
        "members not a list": lambda r: {"node": "x", "ready": True, "members": "lots"},
        "member not a map": lambda r: {"node": "x", "ready": True, "members": [good, 5]},
        "result a string": lambda r: "cluster",
        "result nil": lambda r: None,
        "not msgpack": lambda r: RawFrames(b"", b"\xc1\xc1garbage"),
        "three frames": lambda r: RawFrames(b"", b"x", b"y"),
    }


CLUSTER_CASES = [
    "non-string id",
    "integer ids",
    "list id",
    "unresolvable address",
    "address not a string",
    "address with a space",
    "members not a list",
    "member not a map",
    "result a string",
    "result nil",
    "not msgpack",
    "three frames",
]


@pytest.mark.parametrize("case", CLUSTER_CASES)
def test_client_keeps_beating_and_serving_after_a_garbage_cluster_view(
    fake: FakeNode, case: str
) -> None:
    fake.answers["cluster"] = cluster_views(fake)[case]
    services = [f"svc{i}" for i in range(8)]  # some hash to the bad members, if any
    with Client([fake.address], **FAST) as c:
        for s in services:
            c.register(s, "10.0.0.1", 80)
        wait_until(lambda: fake.count("cluster") >= 1, timeout=10, what="a cluster request")
        before = {s: fake.beats_for(s) for s in services}
        wait_until(
            lambda: all(fake.beats_for(s) >= before[s] + 3 for s in services),
            timeout=10,
            what="three more beats for every service after the bad view",
        )
        assert c.ping()["epoch"] == 7
        c.register("late", "10.0.0.2", 80)  # writes still go somewhere that answers
        wait_until(lambda: fake.beats_for("late") >= 2, timeout=10, what="beats for a new one")


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: "garbage",
        lambda r: {"instances": -1},
        lambda r: {"instances": "all"},
        lambda r: [],
    ],
    ids=["string", "negative", "not a count", "list"],
)
def test_garbage_session_replies_cost_a_log_line_not_the_client(
    fake: FakeNode, answer: Answer, caplog: pytest.LogCaptureFixture
) -> None:
    fake.answers["session_open"] = answer
    fake.answers["session_renew"] = answer
    with Client([fake.address], **{**FAST, "sessions": True}) as c:
        c.register("svc", "10.0.0.1", 80)
        wait_until(lambda: fake.count("session_renew") >= 5, timeout=10, what="renewals go on")
        assert c.ping()["epoch"] == 7  # the I/O thread is alive and serving
        c.register("late", "10.0.0.2", 80)
    renewal_lines = [r for r in caplog.records if "session renewal failed" in r.getMessage()]
    assert 1 <= len(renewal_lines) <= 3  # rate-limited, not one per renewal


def test_a_good_view_with_an_unreachable_member_still_routes_writes(fake: FakeNode) -> None:
    """Writes owned by a member whose address does not resolve go through the server."""
    fake.answers["cluster"] = lambda r: {
        "node": "fake",
        "ready": True,
        "members": [fake.member("fake"), fake.member("zz", "no-such-host.invalid:7800")],
    }
    with Client([fake.address], **FAST) as c:
        c.register("first", "10.0.0.1", 80)
        wait_until(lambda: fake.count("cluster") >= 1, timeout=10, what="a cluster request")
        for i in range(8):
            c.register(f"after{i}", "10.0.0.1", 80)  # each answered within the timeout
        wait_until(lambda: all(fake.beats_for(f"after{i}") >= 2 for i in range(8)), timeout=10)


@pytest.mark.parametrize(
    "op,answer",
    [
        ("ping", lambda r: [1, 2, 3]),
        ("ping", lambda r: "pong"),
        ("ping", lambda r: {"epoch": "seven", "version": "0.1.0", "address": "x:1"}),
        ("stats", lambda r: ["not", "a", "map"]),
        ("stats", lambda r: {"address": "x:1"}),
        ("services", lambda r: {"services": [{"service": 5, "group": "g"}]}),
        ("instances", lambda r: {"revision": 1, "epoch": 1, "instances": [{"ip": 5}]}),
        ("instances", lambda r: {"revision": 1, "epoch": 1, "instances": "all"}),
    ],
)
def test_a_result_of_the_wrong_shape_is_a_clear_error_at_once(
    fake: FakeNode, op: str, answer: Answer
) -> None:
    fake.answers[op] = answer
    with Client([fake.address], **FAST) as c:
        call = {
            "ping": c.ping,
            "stats": c.stats,
            "services": c.services,
            "instances": lambda: c.instances("svc"),
        }[op]
        with pytest.raises(RemoteProtocolError) as err:
            call()
        message = str(err.value)
        assert f"node at {fake.address} sent a malformed reply" in message, message
        assert "compatible version" in message
        if op != "ping":
            assert c.ping()["epoch"] == 7  # the client goes on serving


@pytest.mark.parametrize(
    "raw",
    [
        RawFrames(b"", b"\xc1 not msgpack"),
        RawFrames(b"", msgpack.packb([1, 2])),
        RawFrames(b"", msgpack.packb({"id": "x", "ok": True})),
        RawFrames(b"not empty", b"body"),
    ],
)
def test_an_unreadable_reply_is_reported_as_malformed_not_as_no_reply(
    fake: FakeNode, raw: RawFrames
) -> None:
    fake.answers["ping"] = lambda r: raw
    with (
        Client([fake.address], timeout=1.0, attempt_timeout=0.3) as c,
        pytest.raises(RemoteProtocolError) as err,
    ):
        c.ping()
    message = str(err.value)
    assert f"ping: the node at {fake.address} sent a malformed reply" in message, message
    assert "is it a meshreg node of a compatible version?" in message
    assert "no reply" not in message


def test_a_failing_loop_turn_is_logged_and_the_loop_goes_on(
    fake: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Client([fake.address], **FAST) as c:
        c.register("svc", "10.0.0.1", 80)
        core = c._agent.core
        real = core.tick
        failures = []

        def flaky(now: float) -> list[Any]:
            if len(failures) < 3:
                failures.append(now)
                raise RuntimeError("boom")
            return real(now)

        monkeypatch.setattr(core, "tick", flaky)
        wait_until(lambda: len(failures) == 3, timeout=10, what="three failed turns")
        before = fake.beats_for("svc")
        wait_until(lambda: fake.beats_for("svc") >= before + 3, timeout=10, what="beats again")
        assert c.ping()["epoch"] == 7


def test_a_dead_io_thread_makes_later_calls_name_the_cause(
    fake: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = Client([fake.address], **FAST)
    try:
        assert c.ping()["epoch"] == 7

        def broken() -> None:
            raise zmq.ZMQError(zmq.ETERM)

        monkeypatch.setattr(c._agent, "_turn", broken)
        c._agent.submit(NoteWrite(ServiceKey("public", "DEFAULT_GROUP", "x")))  # wakes the loop
        wait_until(lambda: not c._agent._thread.is_alive(), timeout=10, what="the thread ends")
        with pytest.raises(ClientClosedError, match=r"I/O thread stopped \(ZMQError.*create a new"):
            c.ping()
        with pytest.raises(MeshregError, match="I/O thread stopped"):
            c.register("svc", "10.0.0.1", 80)
    finally:
        c.close(timeout=0.5)


# -- the disk cache: a bad file is absent, never an exception --------------------------
KEY = ServiceKey("public", "DEFAULT_GROUP", "svc")


def cache_file(tmp_path: Path, body: Any) -> DiskCache:
    cache = DiskCache(tmp_path)
    path = cache.path(KEY)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return cache


def valid(**changes: Any) -> dict[str, Any]:
    body = {
        "format": 1,
        "namespace": KEY.namespace,
        "group": KEY.group,
        "service": KEY.service,
        "saved_at": 1.0,
        "instances": [Instance("10.0.0.1", 80).to_wire()],
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    "body",
    [
        [1, 2, 3],
        "5",
        valid(instances={"a": 1}),
        valid(instances=[[1]]),
        valid(instances=[{"ip": [1], "port": 80}]),
        valid(instances=[{"ip": "10.0.0.1", "port": "80"}]),
        valid(instances=[{"ip": "10.0.0.1", "port": 80, "metadata": {"a": [1]}}]),
        valid(saved_at={"t": 1}),
        "[" * 100_000 + "]" * 100_000,  # deep enough to exhaust the parser's recursion
        '{"format": 1, "instances": ' + "[" * 100_000,
    ],
    ids=lambda b: str(b)[:40],
)
def test_a_bad_disk_cache_file_is_ignored_not_raised(tmp_path: Path, body: Any) -> None:
    assert cache_file(tmp_path, body).load(KEY) is None
    assert cache_file(tmp_path, valid()).load(KEY) is not None  # and a good one still loads


def test_a_client_with_a_bad_cache_file_asks_the_node(fake: FakeNode, tmp_path: Path) -> None:
    cache_file(tmp_path, valid(instances=[{"ip": [1], "port": 80}]))
    fake.answers["instances"] = lambda r: {
        "namespace": "public",
        "group": "DEFAULT_GROUP",
        "service": "svc",
        "epoch": 1,
        "revision": 3,
        "instances": [Instance("10.0.0.9", 80).to_wire()],
    }
    with Client([fake.address], cache_dir=tmp_path, **FAST) as c:
        assert [i.address for i in c.instances("svc")] == ["10.0.0.9:80"]


# -- the CLI: names and metadata from a node never reach the terminal raw (L1) ---------
EVIL = "\x1b]0;pwned\x07\x1b[2J\u202eevil\x00"
SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J\\u202eevil\\x00"


def evil_answers(fake: FakeNode) -> None:
    evil_instance = {**Instance("10.0.0.1", 80).to_wire(), "metadata": {"zone" + EVIL: EVIL}}
    evil_instance["cluster"] = "c" + EVIL
    fake.answers["instances"] = lambda r: {
        "namespace": "public",
        "group": "DEFAULT_GROUP",
        "service": r["service"],
        "epoch": 1,
        "revision": 1,
        "instances": [evil_instance, {**Instance("10.0.0.2" + EVIL, 81).to_wire()}],
    }
    fake.answers["services"] = lambda r: {
        "namespace": "public",
        "services": [{"group": "DEFAULT_GROUP", "service": "svc" + EVIL}],
    }
    fake.answers["cluster"] = lambda r: {
        "node": "n" + EVIL,
        "ready": True,
        "members": [fake.member("fake" + EVIL), fake.member("b", state="up" + EVIL)],
    }
    fake.answers["stats"] = lambda r: {
        "address": "a" + EVIL + ":1",
        "version": "v" + EVIL,
        "epoch": 1,
        "uptime": 1.0,
        "services": 1,
        "instances": {"total": 1, "healthy": 1, "unhealthy": 0},
        "beats_per_second": 0.0,
        "subscribers": 0,
        "errors_total": 0,
        "errors": {},
        "requests": {},
        "health_judgment": "j" + EVIL,
    }


def cli(fake: FakeNode, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        meshreg_cmd(*args, "-s", fake.address, "--timeout", "3"),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (("instances", "svc"), "zone" + SHOWN + "=" + SHOWN),
        (("instances", "svc"), "c" + SHOWN),
        (("services",), "svc" + SHOWN),
        (("select", "svc"), "10.0.0."),
        (("cluster",), "fake" + SHOWN),
        (("cluster",), "up" + SHOWN),
        (("stats",), "v" + SHOWN),
        (("stats",), "j" + SHOWN),
    ],
)
def test_cli_human_output_escapes_control_characters(
    fake: FakeNode, args: tuple[str, ...], needle: str
) -> None:
    evil_answers(fake)
    out = cli(fake, *args)
    assert out.returncode == 0, out.stderr
    assert needle in out.stdout, out.stdout
    for raw in ("\x1b", "\x07", "\x00", "\u202e"):
        assert raw not in out.stdout and raw not in out.stderr


def test_cli_json_output_stays_exact(fake: FakeNode) -> None:
    evil_answers(fake)
    out = cli(fake, "instances", "svc", "--json")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout
    listed = json.loads(out.stdout)
    assert listed[0]["metadata"] == {"zone" + EVIL: EVIL}
    assert json.loads(cli(fake, "services", "--json").stdout) == ["svc" + EVIL]


def test_cli_watch_escapes_control_characters(fake: FakeNode) -> None:
    evil_answers(fake)
    proc = subprocess.Popen(
        meshreg_cmd("watch", "svc", "-s", fake.address),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(target=lambda: lines.extend(stream), daemon=True).start()
        wait_until(lambda: lines, timeout=15, what="the first watch line")
        assert "10.0.0.2" + SHOWN + ":81" in lines[0], lines[0]
        assert "\x1b" not in lines[0]
    finally:
        proc.kill()
        proc.wait(5)


def test_cli_error_messages_from_a_node_are_escaped(fake: FakeNode) -> None:
    fake.answers["services"] = lambda r: RawFrames(
        b"",
        msgpack.packb(
            {"v": 1, "id": r["id"], "ok": False, "error": {"code": 4, "message": "bad" + EVIL}}
        ),
    )
    out = cli(fake, "services")
    assert out.returncode == 1
    assert "bad" + SHOWN in out.stderr and "\x1b" not in out.stderr


def test_a_garbage_notification_is_ignored_and_the_next_good_one_applied(
    fake: FakeNode,
) -> None:
    from meshreg.wire.notifications import topic_for

    key = ServiceKey("public", "DEFAULT_GROUP", "svc")
    fake.answers["instances"] = lambda r: {
        "namespace": "public",
        "group": "DEFAULT_GROUP",
        "service": "svc",
        "epoch": 1,
        "revision": 1,
        "instances": [Instance("10.0.0.1", 80).to_wire()],
    }
    head = {"v": 1, "kind": "delta", "epoch": 1, "base": 1, "revision": 2, **key._asdict()}
    garbage = [
        {**head, "upsert": [{"ip": 5, "port": 80}], "remove": []},  # sorts against str ips
        {**head, "upsert": [{"ip": ["x"], "port": 80}], "remove": []},
        {**head, "upsert": "all", "remove": []},
        {**head, "upsert": [], "remove": [["10.0.0.1", 80]]},
        {**head, "namespace": ["public"]},
    ]
    good = {**head, "upsert": [Instance("10.0.0.2", 80).to_wire()], "remove": []}
    pub = fake._ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(f"tcp://{HOST}:{fake.port + 1}")
    seen: list[set[str]] = []
    try:
        with Client([fake.address], **FAST) as c:
            c.subscribe("svc", lambda xs: seen.append({i.address for i in xs}))
            c.register("svc", "10.0.0.9", 80)

            def applied() -> bool:
                for body in [*garbage, good]:  # until the SUB is connected: slow joiner
                    pub.send_multipart([topic_for(key), msgpack.packb(body)])
                return bool(seen) and seen[-1] == {"10.0.0.1:80", "10.0.0.2:80"}

            wait_until(applied, timeout=10, interval=0.05, what="the good delta applied")
            before = fake.beats_for("svc")
            wait_until(lambda: fake.beats_for("svc") >= before + 2, timeout=10)
            assert c.ping()["epoch"] == 7
    finally:
        pub.close(linger=0)


def test_config_publish_without_type_sends_none_for_the_owner_to_keep(fake: FakeNode) -> None:
    """`config publish` without --type (nor an extension it knows) sends no type: the data
    id's responsible node keeps the type it has in the same write (it used to read the
    type first, which raced other writers)."""
    sent: list[dict[str, Any]] = []

    def publish(r: dict[str, Any]) -> RawFrames:
        sent.append(r)
        refusal = {"code": 11, "name": "CONFLICT", "message": "is at revision 3, not 2"}
        return RawFrames(b"", msgpack.packb({"v": 1, "id": r["id"], "ok": False,
                                             "error": refusal}))  # fmt: skip

    fake.answers["config_publish"] = publish
    out = cli(fake, "config", "publish", "x", "--content", "y")
    assert out.returncode != 0 and "is at revision 3" in out.stderr, out.stderr
    assert sent and all("type" not in r for r in sent), sent
    assert fake.count("config_history") == 0  # no read first
    typed = cli(fake, "config", "publish", "x", "--content", "y", "--type", "json")
    assert typed.returncode != 0 and sent[-1]["type"] == "json"
