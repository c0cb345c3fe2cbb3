"""ClientSession while every server fails (review12 F-offline), on a fake clock (ms): once
each server failed an attempt, reads with a disk copy are served at once and said once,
reads without one fail at once, one probe keeps the backoff going, and the first answer
(on the current connection, or from the next server at its switch) ends it all."""

from __future__ import annotations

import dataclasses

import pytest
from session_harness import SVC, Handle, Harness, addition, instance_map, snapshot

from meshreg import cli
from meshreg.client.actions import (
    CallConfigListener,
    Complete,
    Fail,
    SendRequest,
    WatchConfigTopic,
    WatchTopic,
)
from meshreg.client.commands import ConfigCall, ConfigListen, ReadCached, Subscribe
from meshreg.client.configs import config_info_from_map
from meshreg.client.defaults import RETRYING_IN_BACKGROUND
from meshreg.client.session import (
    BACKOFF_BASE,
    BACKOFF_MAX,
    HOME_RETURN_INTERVAL,
    OFFLINE_PROBE_INTERVAL,
    OFFLINE_PROBES,
)
from meshreg.configcenter.model import ConfigKey, content_md5
from meshreg.errors import ServerUnreachableError
from meshreg.log_limiter import LOG_INTERVAL
from meshreg.model import Instance, ServiceKey

ATTEMPT_MS = 500
PING = {"epoch": 1, "version": "1", "address": "x"}


def service(n: int) -> ServiceKey:
    return SVC._replace(service=f"s{n}")


def disk_copy(ip: str) -> tuple[Instance, ...]:
    return (Instance.from_wire(instance_map(ip)),)


def read(h: Harness, key: ServiceKey, saved: tuple[Instance, ...] | None, timeout: float = 3.0):
    """What ``Client.instances`` submits for a service it does not watch yet."""
    handle = Handle(key.service)
    h.do(Subscribe(key, None, timeout, handle, pinned=True, saved=saved))
    return handle


def offline(h: Harness) -> None:
    """Let every server fail one attempt (a first read of s0, from its disk copy)."""
    first = read(h, service(0), disk_copy("10.0.0.0"))
    h.advance(ATTEMPT_MS * len(h.servers))
    assert h.core.offline
    done = h.outcome(first)
    assert isinstance(done, Complete) and [i.ip for i in done.result] == ["10.0.0.0"]


def answer_one(h: Harness) -> str:
    """The node behind the current connection is back: it answers one request in flight
    (the probe, or a pull a switch sent); returns its op."""
    for op, result in (("ping", PING), ("instances", snapshot(2, 3, "10.0.0.1", "10.0.0.2"))):
        if todo := [r for r in h.unanswered(op) if r.to == h.connected]:
            h.reply(todo[0], result)
            return op
    raise AssertionError(f"nothing in flight to {h.connected}")


def served(h: Harness) -> list[str]:
    return [t for t in h.logs("warning") if "serving the disk cache" in t]


def test_a_first_read_waits_only_until_every_server_failed_then_gets_its_disk_copy() -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS)
    first = read(h, service(0), disk_copy("10.0.0.0"), timeout=3.0)
    h.advance(ATTEMPT_MS)  # a failed; b is tried
    assert h.outcome(first) is None and not h.core.offline
    h.advance(ATTEMPT_MS)  # b failed too: no answer will come sooner than a time-out
    assert h.core.offline
    done = h.outcome(first)
    assert isinstance(done, Complete) and [i.ip for i in done.result] == ["10.0.0.0"]
    (line,) = served(h)
    assert "s0" in line and "a:1, b:2" in line


def test_offline_every_later_read_with_a_disk_copy_is_served_at_once_and_said_once() -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS)
    offline(h)
    handles = [read(h, service(n), disk_copy(f"10.0.0.{n}")) for n in range(1, 20)]
    for n, handle in enumerate(handles, 1):  # the same instant: nobody waited
        done = h.outcome(handle)
        assert isinstance(done, Complete) and [i.ip for i in done.result] == [f"10.0.0.{n}"]
    # said once each, with the others (review51 F4: not one line per service): the first
    # at once, the 19 served after it in the same LOG_INTERVAL in one line when it ends
    (first,) = served(h)
    assert first.startswith("public/DEFAULT_GROUP/s0: no meshreg server answers (instances: ")
    for n in range(20):  # later reads come from the view, and are not said again
        handle = Handle()
        h.do(ReadCached(service(n), True, handle))
        assert h.outcome(handle).result[0] == "view"  # type: ignore[union-attr]
    h.advance(int(LOG_INTERVAL * 1000))
    assert served(h)[0] == first and len(served(h)) == 2
    assert served(h)[1].startswith(
        "19 watched services (e.g. public/DEFAULT_GROUP/s1): no meshreg server answers ("
    )
    h.advance(int(LOG_INTERVAL * 1000))
    assert len(served(h)) == 2
    # a subscriber's callback gets the disk copy at once too
    calls: list[list[Instance]] = []
    handle = Handle()
    h.do(Subscribe(service(99), calls.append, 3.0, handle, saved=disk_copy("10.9.9.9")))
    assert isinstance(h.outcome(handle), Complete)
    assert [[i.ip for i in c] for c in h.listener_calls()][-1] == ["10.9.9.9"]


def test_offline_a_read_without_a_disk_copy_fails_at_once_naming_every_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS)
    offline(h)
    handle = read(h, service(7), None)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and isinstance(done.error, ServerUnreachableError)
    text = str(done.error)
    assert text.startswith("instances: no reply from meshreg server(s) a:1, b:2")
    assert "no TCP connection to a:1 completed, and none was refused" in text  # (review81)
    assert "check --server / MESHREG_SERVERS" in text
    assert RETRYING_IN_BACKGROUND in text  # true of a process that keeps its client ...
    with pytest.raises(SystemExit):
        cli._fail(text)  # ... not of a one-shot command's, closed as it exits
    said = capsys.readouterr().err
    assert said.startswith("meshreg: error: instances: no reply") and "background" not in said
    assert WatchTopic(service(7)) not in h.actions and not h.core.watching(service(7))
    assert [r for r in h.requests("instances") if r.fields["service"] == "s7"] == []


def test_offline_one_probe_is_always_in_flight_and_the_backoff_goes_on() -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS, resync_ms=1_000_000)
    offline(h)
    start, connects = h.now_ms, len(h.connects())
    switches: list[int] = []
    while h.now_ms < start + 120_000:
        h.advance(50)
        assert h.core._pending, f"nothing in flight at {h.now_ms} ms"
        if len(h.connects()) > connects:
            switches.append(h.now_ms)
            connects = len(h.connects())
    gaps = [b - a for a, b in zip(switches, switches[1:], strict=False)]
    # the pause doubles from BACKOFF_BASE (but a probe is one attempt at least) to the cap
    assert gaps[0] >= max(ATTEMPT_MS, int(BACKOFF_BASE * 1000))
    assert gaps == sorted(gaps) and max(gaps) <= int(BACKOFF_MAX * 1000) + 100
    assert max(gaps) >= int(BACKOFF_MAX * 1000)
    probes = {a.request_id for a in h.actions if isinstance(a, SendRequest) and a.via}
    pings = [r for r in h.sent if r.op == "ping" and r.id > 0 and r.id not in probes]
    assert len(pings) <= 2 * len(switches) + 4, (len(pings), switches)  # not one per tick
    # and the other server is pinged straight, one round per OFFLINE_PROBE_INTERVAL
    assert 60 <= len(probes) <= 120 / OFFLINE_PROBE_INTERVAL + 1, len(probes)
    assert h.core.offline


@pytest.mark.parametrize("back", ["b:2", "c:3"])
def test_offline_a_server_that_answers_again_is_used_at_once_not_at_the_next_switch(
    back: str,
) -> None:
    """review47 F1: after a freeze of every node, some come back; the client, waiting
    out its backoff on one still frozen (and due to switch next to another frozen one),
    used a node that was back only when the rotation reached it (up to 30 s: its
    instances were evicted meanwhile).  The other servers are pinged straight while
    offline: the first that answers is the server at once, and what waits goes there."""
    h = Harness(servers=("a:1", "b:2", "c:3"), attempt_ms=ATTEMPT_MS, resync_ms=1_000_000)
    offline(h)
    h.advance(40_000)  # deep in the backoff: pauses of 16 s and 30 s
    waiting_on = h.connected
    read(h, service(5), disk_copy("10.0.0.5"))  # (served from disk, pulled once back)
    if back == waiting_on:
        back = "a:1" if waiting_on != "a:1" else "b:2"
    h.advance(int(OFFLINE_PROBE_INTERVAL * 1000) + 10)
    todo = [r for r in h.unanswered("ping") if r.to == back]
    assert todo, f"no probe of {back} in flight"
    h.reply(todo[-1], PING)
    assert h.connected == back and h.core.server == back and not h.core.offline
    assert any(f"{waiting_on} still does not answer and {back} does again" in t
               for t in h.logs("warning"))  # fmt: skip
    assert [r for r in h.unanswered("instances") if r.to == back]  # pulled there now


def test_a_probe_answered_after_the_server_waited_on_came_back_moves_nothing() -> None:
    """The server waited on answers first (it came back too): a probe's later answer
    from another server is no reason to move."""
    h = Harness(servers=("a:1", "b:2", "c:3"), attempt_ms=ATTEMPT_MS, resync_ms=1_000_000)
    offline(h)
    h.advance(40_000)
    waiting_on = h.connected
    h.advance(int(OFFLINE_PROBE_INTERVAL * 1000) + 10)
    probes = [r for r in h.unanswered("ping") if r.to != waiting_on]
    assert probes
    answer_one(h)  # the server waited on is back
    assert not h.core.offline and h.connected == waiting_on
    h.reply(probes[0], PING)
    assert h.connected == waiting_on and h.core.server == waiting_on


def test_a_probe_answered_through_the_server_moves_nothing() -> None:
    """A probe re-sent through the server (a switch re-sends what is in flight there) and
    answered by it is the server answering: no move.  (CI: a move made while the loop
    read that server's socket closed it under the read, and the I/O thread died.)"""
    h = Harness(servers=("a:1", "b:2", "c:3"), attempt_ms=ATTEMPT_MS, resync_ms=1_000_000)
    offline(h)
    h.advance(40_000)
    waiting_on = h.connected
    h.advance(int(OFFLINE_PROBE_INTERVAL * 1000) + 10)
    probe = next(r for r in h.unanswered("ping") if r.to != waiting_on)
    h.reply(probe, PING, source=waiting_on)
    assert h.connected == waiting_on and not h.core.offline


def test_a_single_given_server_back_is_used_again_over_a_frozen_learned_member() -> None:
    """review47 F2: a client given one server (its local node) fell back on a member it
    learned from the cluster view; both froze; its own server came back, the member did
    not: the client stayed on the member (its writes failed "never left", its own node
    marked its instances unhealthy).  The given server is probed like any other."""
    h = Harness(servers=("a:1",), attempt_ms=ATTEMPT_MS, resync_ms=1_000_000)
    h.core.servers.append(("m", 9))  # learned from the view (``_learn_members``)
    read(h, service(0), disk_copy("10.0.0.0"))
    h.advance(ATTEMPT_MS)  # a:1 failed: on the member
    assert h.connected == "m:9"
    h.advance(ATTEMPT_MS)
    assert h.core.offline
    h.advance(20_000)
    stuck = h.connected
    other = "a:1" if stuck == "m:9" else "m:9"
    h.advance(int(OFFLINE_PROBE_INTERVAL * 1000) + 10)
    (probe, *_) = [r for r in h.unanswered("ping") if r.to == other]
    h.reply(probe, PING)
    assert h.connected == other and not h.core.offline


def test_offline_probes_are_bounded_per_round_and_one_per_server_in_flight() -> None:
    servers = tuple(f"s{i}:{i + 1}" for i in range(OFFLINE_PROBES * 2 + 3))
    h = Harness(servers=servers, attempt_ms=ATTEMPT_MS, resync_ms=1_000_000)
    offline(h)
    before = {r.id for r in h.sent}
    h.advance(10)
    sent = [a for a in h.actions if isinstance(a, SendRequest) and a.via]
    first = [a for a in sent if a.request_id not in before]
    assert len(first) <= OFFLINE_PROBES
    for _ in range(5):
        h.advance(int(OFFLINE_PROBE_INTERVAL * 1000))
        in_flight = [r.to for r in h.unanswered("ping") if r.to != h.connected]
        assert len(in_flight) == len(set(in_flight)) <= len(servers) - 1


def test_an_answer_on_the_current_connection_ends_offline_and_pulls_what_was_stale() -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS, resync_ms=1_000_000)
    offline(h)
    read(h, service(1), disk_copy("10.0.0.1"))
    for wait in (2000, 6000):  # whatever is in flight then: the probe, or a switch's pulls
        h.advance(wait)
        stale = sorted(k.service for k, w in h.core.watches.items() if w.said_stale)
        assert stale == (["s0", "s1"] if wait == 2000 else ["s0", "s1", "s2"])
        said = len(h.logs("info"))
        answer_one(h)  # the node behind the current connection is back
        assert not h.core.offline
        for r in h.unanswered("instances"):  # the rest of the stale views are pulled
            h.reply(r, snapshot(2, 3, "10.0.0.1", "10.0.0.2"))
        assert not any(w.said_stale for w in h.core.watches.values())
        again = [t for t in h.logs("info")[said:] if "live data again" in t]
        if wait == 2000:  # the first said at once; s1, back after it, when the interval ends
            assert again == [f"public/DEFAULT_GROUP/s0: live data again from {h.connected}"]
        else:  # within the interval: summed up with s1 when it ends (review51 F4)
            assert again == []
        if wait == 2000:  # offline again for the second round: s2's read waits for it
            handle = read(h, service(2), disk_copy("10.0.0.2"))
            h.advance(ATTEMPT_MS * 2)
            assert h.core.offline and isinstance(h.outcome(handle), Complete)
    # reads are sent again: a service with no disk copy waits for the node's answer
    handle = read(h, service(7), None)
    assert h.outcome(handle) is None
    (pull,) = [r for r in h.unanswered("instances") if r.fields["service"] == "s7"]
    h.reply(pull, snapshot(2, 1, "10.0.0.7"))
    assert isinstance(h.outcome(handle), Complete)
    source = h.connected
    h.advance(int(LOG_INTERVAL * 1000))
    # s1 (1st round) was back before its "no server answers" was said: neither is said of
    # it; the 2nd round's were said (summed up), then their return (summed up after it)
    lines = [t for t in h.logs() if "live data again" in t or "server answers" in t]
    assert [t.partition(":")[0] for t in lines[:4]] == [
        "public/DEFAULT_GROUP/s0", "public/DEFAULT_GROUP/s0",
        "2 watched services (e.g. public/DEFAULT_GROUP/s0)",
        "2 watched services (e.g. public/DEFAULT_GROUP/s0)",
    ]  # fmt: skip
    assert "server answers" in lines[2] and lines[3].endswith(f"live data again from {source}")


def test_a_notification_from_the_current_server_ends_offline_too() -> None:
    """Its SUB reconnected first (a sync or delta): the node is up, its replies follow."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS, resync_ms=1_000_000)
    offline(h)
    h.push(addition(9, 1, "10.0.0.9", key=service(0)))
    assert not h.core.offline
    handle = read(h, service(7), None)  # sent, not failed at once
    assert h.outcome(handle) is None


@pytest.mark.parametrize("watches", [True, False])
def test_a_server_that_comes_back_elsewhere_is_found_at_the_next_switch(watches: bool) -> None:
    """``watches``: a watcher pings every PROBE_INTERVAL anyway; a client whose only read
    failed (no disk copy) has no listener, and is kept trying by the offline probe alone."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS, resync_ms=1_000_000)
    if watches:
        offline(h)
    else:
        handle = read(h, service(7), None, timeout=1.0)  # no listener: none kept
        h.advance(1000)
        assert isinstance(h.outcome(handle), Fail) and h.core.offline
        assert not any(w.listeners for w in h.core.watches.values())
    h.advance(20_000)  # deep in the backoff
    current = h.connected
    other = "b:2" if current == "a:1" else "a:1"
    # the other server is back: it is asked (the probe) at the next switch, no later
    t0 = h.now_ms
    while not h.unanswered("ping") or h.unanswered("ping")[0].to != other:
        h.advance(10)
        assert h.now_ms - t0 <= int(BACKOFF_MAX * 1000) + ATTEMPT_MS, "never asked again"
    h.reply(h.unanswered("ping")[0], PING)
    assert not h.core.offline and h.connected == other


def test_one_server_up_among_dead_ones_never_makes_the_client_offline() -> None:
    h = Harness(servers=("a:1", "b:2", "c:3"), attempt_ms=ATTEMPT_MS)
    first = read(h, service(0), disk_copy("10.0.0.0"))
    h.advance(2 * ATTEMPT_MS)  # a and b failed; c is asked
    assert not h.core.offline and h.outcome(first) is None  # the disk copy is not served
    pulls = h.unanswered("instances")  # the first and the one the switch to c sent
    assert {p.to for p in pulls} == {"c:3"}
    h.reply(pulls[0], snapshot(1, 4, "10.0.0.1"))
    done = h.outcome(first)
    assert isinstance(done, Complete) and [i.ip for i in done.result] == ["10.0.0.1"]
    assert served(h) == []
    handle = read(h, service(7), None)  # the next read is sent, to c at once
    assert h.outcome(handle) is None
    assert [r.to for r in h.unanswered("instances") if r.fields["service"] == "s7"] == ["c:3"]


# -- the config center ----------------------------------------------------------------------
KEY = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")
FIELDS = {"namespace": KEY.namespace, "group": KEY.group, "data_id": KEY.data_id}


def config_map(revision: int, content: str = "a: 1", key: ConfigKey = KEY) -> dict:
    return {**key._asdict(), "content": content, "type": "yaml", "md5": content_md5(content),
         "revision": revision, "modified": 1700000000.5, "modified_by": "n1", "tags": {},
         "description": "", "deleted": False, "change": "publish", "origin": "n1"}  # fmt: skip


def saved_config(revision: int, content: str = "a: 1", key: ConfigKey = KEY):
    return dataclasses.replace(config_info_from_map(config_map(revision, content, key)),
                               from_cache=True)  # fmt: skip


def test_offline_config_get_fails_at_once_so_the_client_serves_its_disk_copy() -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS)
    offline(h)
    before = len([a for a in h.actions if isinstance(a, SendRequest)])
    handle = Handle()
    h.do(ConfigCall("config_get", KEY, dict(FIELDS), 3.0, handle))
    done = h.outcome(handle)
    assert isinstance(done, Fail) and isinstance(done.error, ServerUnreachableError)
    assert "config_get: no reply from meshreg server(s) a:1, b:2" in str(done.error)
    assert len([a for a in h.actions if isinstance(a, SendRequest)]) == before


def test_offline_a_first_listen_gets_its_disk_copy_at_once_or_fails_at_once() -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS)
    offline(h)
    calls: list[tuple[str | None, int]] = []
    handle = Handle()
    h.do(ConfigListen(KEY, lambda c, r: calls.append((c, r)), 3.0, handle, saved_config(3)))
    done = h.outcome(handle)
    assert isinstance(done, Complete) and done.result.from_cache
    lines = [t for t in h.logs("warning") if "disk cache copy" in t]
    assert len(lines) == 1 and str(KEY) in lines[0] and "revision 3" in lines[0]
    other = KEY._replace(data_id="other.yaml")
    handle = Handle()
    h.do(ConfigListen(other, lambda c, r: None, 3.0, handle))
    done = h.outcome(handle)
    assert isinstance(done, Fail) and isinstance(done.error, ServerUnreachableError)
    assert done.error.listener_kept  # and kept (Nacos's redo): listened to once one answers
    assert other in h.core.configs.listens and WatchConfigTopic(other) in h.actions
    # the node comes back: the listens are sent again, the live version replaces the copy
    h.advance(1000)
    assert answer_one(h) == "instances"  # s0's pull (offline())
    assert not h.core.offline
    listens = {r.fields["data_id"]: r for r in h.unanswered("config_listen")}
    assert sorted(listens) == ["app.yaml", "other.yaml"]
    h.reply(listens["other.yaml"],
            {"revision": 2, "entry": config_map(2, "b: 1", other), "deleted": False})
    called = [(a.content, a.revision) for a in h.actions
              if isinstance(a, CallConfigListener) and a.content == "b: 1"]  # fmt: skip
    assert called == [("b: 1", 2)]


def test_offline_a_first_subscribe_fails_at_once_keeps_its_listener_and_calls_it_later() -> None:
    """Nacos 2's redo: the caller is told, the listener is called with the list once a node
    answers (review51: it was dropped, the caller had to subscribe again)."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS, resync_ms=1_000_000)
    offline(h)
    handle = Handle()
    h.do(Subscribe(service(5), lambda found: None, 3.0, handle))
    done = h.outcome(handle)
    assert isinstance(done, Fail) and isinstance(done.error, ServerUnreachableError)
    assert done.error.listener_kept and "unsubscribe() drops it" in str(done.error)
    assert service(5) in h.core.watches and WatchTopic(service(5)) in h.actions
    h.advance(1000)
    answer_one(h)  # a node answers: the kept subscriber's service is pulled
    assert not h.core.offline
    pulls = [r for r in h.unanswered("instances") if r.fields["service"] == "s5"]
    assert pulls  # (the switch's, and the one sent when a node answered)
    for pull in pulls:
        h.reply(pull, snapshot(2, 1, "10.0.0.5"))
    assert [[i.ip for i in c] for c in h.listener_calls()] == [["10.0.0.5"]]


def test_a_first_subscribe_whose_pull_times_out_keeps_its_listener_a_read_does_not() -> None:
    h = Harness(attempt_ms=ATTEMPT_MS, resync_ms=1_000_000)
    sub, pinned = Handle(), read(h, service(6), None, timeout=1.0)
    h.do(Subscribe(service(5), lambda found: None, 1.0, sub))
    h.advance(1000)
    done = h.outcome(sub)
    assert isinstance(done, Fail) and done.error.listener_kept
    assert service(5) in h.core.watches
    done = h.outcome(pinned)
    assert isinstance(done, Fail) and not done.error.listener_kept  # a read keeps nothing


def test_many_listens_served_from_disk_then_live_again_are_one_line_per_kind() -> None:
    """An application listening to 50 data ids started during an outage: one WARNING for
    the disk copies and, once a node answers, one INFO for the live data, each naming the
    first at once and the others summed up when LOG_INTERVAL ends (before: 50 of each;
    review51 F4's rule for watched services)."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS)
    offline(h)
    keys = [KEY._replace(data_id=f"d{i}.yaml") for i in range(50)]
    for key in keys:
        h.do(ConfigListen(key, lambda c, r: None, 3.0, Handle(), saved_config(3, key=key)))
    stale = [t for t in h.logs("warning") if "disk cache cop" in t]
    assert len(stale) == 1, stale
    assert stale[0].startswith("public/DEFAULT_GROUP/d0.yaml: no meshreg server answers")
    assert stale[0].endswith("serving the disk cache copy (revision 3) until one does")
    h.advance(int(LOG_INTERVAL * 1000) + 100)
    stale = [t for t in h.logs("warning") if "disk cache cop" in t]
    assert len(stale) == 2, stale
    assert stale[1].startswith("49 listened data ids (e.g. public/DEFAULT_GROUP/d1.yaml): no ")
    assert stale[1].endswith("serving their disk cache copies until one does")
    answer_one(h)
    assert not h.core.offline
    for req in h.unanswered("config_listen"):
        key = KEY._replace(data_id=req.fields["data_id"])
        h.reply(req, {"revision": 4, "entry": config_map(4, "a: 2", key), "deleted": False})
    assert not any(lst.from_disk for lst in h.core.configs.listens.values())
    again = [t for t in h.logs("info") if "live data again" in t and "yaml" in t]
    assert again == [f"public/DEFAULT_GROUP/d0.yaml: live data again from {h.connected}"]
    h.advance(int(LOG_INTERVAL * 1000) + 100)
    again = [t for t in h.logs("info") if "live data again" in t and "yaml" in t]
    assert again[1:] == [
        f"49 listened data ids (e.g. public/DEFAULT_GROUP/d1.yaml): live data again from "
        f"{h.connected}"
    ], again


def test_a_first_listen_waiting_when_every_server_failed_gets_its_disk_copy_then() -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS)
    handle = Handle()
    h.do(ConfigListen(KEY, lambda c, r: None, 5.0, handle, saved_config(3)))
    h.advance(2 * ATTEMPT_MS)
    done = h.outcome(handle)
    assert isinstance(done, Complete) and done.result.from_cache
    h.advance(5000)  # its listen fails meanwhile: not said again
    assert len([t for t in h.logs("warning") if str(KEY) in t]) == 1


def test_a_first_config_get_waiting_when_every_server_failed_fails_then_if_a_copy_is_held() -> None:
    """review17 F2: a process started in an outage waited its whole time-out for its first
    config_get of a data id it held on disk; now the read fails (the Client then serves
    the copy) as soon as every server failed an attempt.  Without a copy it waits on."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS)
    with_copy, without = Handle(), Handle()
    h.do(ConfigCall("config_get", KEY, dict(FIELDS), 8.0, with_copy, saved=True))
    other = {**FIELDS, "data_id": "other.yaml"}
    h.do(ConfigCall("config_get", KEY._replace(data_id="other.yaml"), other, 8.0, without))
    h.advance(ATTEMPT_MS)  # a failed; b is tried
    assert h.outcome(with_copy) is None and not h.core.offline
    h.advance(ATTEMPT_MS)  # b failed too
    assert h.core.offline
    done = h.outcome(with_copy)
    assert isinstance(done, Fail) and isinstance(done.error, ServerUnreachableError)
    assert "config_get: no reply from meshreg server(s) a:1, b:2" in str(done.error)
    assert h.outcome(without) is None  # no copy to serve: its time-out decides


# -- back to its first server (review51 F1) ---------------------------------------------------
def away_from_home(h: Harness) -> None:
    """a:1 (the client's first) stops answering: the client fails over to b:2, which
    answers."""
    first = read(h, service(0), None)
    h.advance(ATTEMPT_MS)  # a:1 timed out
    assert h.core.server == "b:2"
    h.answer_all("instances", snapshot(2, 3, "10.0.0.1"))
    h.answer_all("ping", PING)
    assert isinstance(h.outcome(first), Complete) and not h.core.offline


def home_pings(h: Harness) -> list:
    return [r for r in h.unanswered("ping") if r.to == "a:1"]


def live_on_b(h: Harness, ms: int) -> None:
    """``ms`` pass while b:2 answers every request sent to it (a:1 is asked nothing but
    its pings, left unanswered here)."""
    end = h.now_ms + ms
    while h.now_ms < end:
        h.advance(min(100, end - h.now_ms))
        answers = {"ping": PING, "instances": snapshot(2, 3, "10.0.0.1"),
                   "revisions": {"epoch": 2, "stale": []}}  # fmt: skip
        for op, result in answers.items():
            for r in h.unanswered(op):
                if r.to == "b:2":
                    h.reply(r, result)


def test_a_client_away_from_its_first_server_goes_back_once_it_answers() -> None:
    """After an outage the fleet stayed on the node back first (160 clients: 46/57/57
    became 131/17/12 for good).  Away from its first server, a client pings it every
    HOME_RETURN_INTERVAL and goes back when it answers ready and sees a majority."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS)
    away_from_home(h)
    live_on_b(h, int(HOME_RETURN_INTERVAL * 1000) - 100)
    assert not home_pings(h)  # not before the interval
    live_on_b(h, 200)
    (ping,) = home_pings(h)
    h.reply(ping, {**PING, "ready": True, "members_up": 2, "members": 3}, source="a:1")
    assert h.core.server == "a:1" and h.connected == "a:1"
    assert any("back to it from b:2" in t for t in h.logs("info"))
    assert not any("back to it" in t for t in h.logs("warning"))


@pytest.mark.parametrize(
    "pong",
    [
        {"ready": False, "members_up": 3, "members": 3},  # still catching up
        {"ready": True, "members_up": 1, "members": 3},  # cut off: no majority
    ],
)
def test_a_first_server_not_ready_or_without_a_majority_is_not_gone_back_to(pong: dict) -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=ATTEMPT_MS)
    away_from_home(h)
    live_on_b(h, int(HOME_RETURN_INTERVAL * 1000) + 100)
    (ping,) = home_pings(h)
    h.reply(ping, {**PING, **pong}, source="a:1")
    assert h.core.server == "b:2"
    live_on_b(h, int(HOME_RETURN_INTERVAL * 1000))  # asked again an interval later
    assert len(home_pings(h)) == 1 and h.core.server == "b:2"


def test_a_ping_of_the_first_server_stays_its_own_when_the_client_fails_over() -> None:
    """review70 (a suspicion): a failover re-sent everything in flight through the new
    server, ``direct_only`` probes too, so "is a:1 back?" was asked of c:3 (the
    callbacks check who answered, so nothing moved; the contract was broken all the
    same).  A probe stays with the node it probes."""
    h = Harness(servers=("a:1", "b:2", "c:3"), attempt_ms=ATTEMPT_MS)
    away_from_home(h)
    live_on_b(h, int(HOME_RETURN_INTERVAL * 1000) - 200)
    read(h, service(1), None)  # b:2 stops answering: it times out, the client fails over
    h.advance(300)  # meanwhile the first server is pinged
    (ping,) = home_pings(h)
    assert h.core.server == "b:2"
    h.advance(ATTEMPT_MS - 300 + 10)
    assert h.core.server == "c:3" and ping.id in h.core._pending
    assert {s.to for s in h.sent if s.id == ping.id} == {"a:1"}
