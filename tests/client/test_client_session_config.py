"""ClientSession's config policies (client/config_session.py), on a fake clock (ms):
the highest revision seen goes with every read, a node that is behind hands the read on,
listening (pushes pull, resync, failover), the disk copy while no node answers."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import msgpack
import pytest
from session_harness import Handle, Harness

from meshreg.client.actions import (
    CallConfigListener,
    Complete,
    Fail,
    SaveConfig,
    UnwatchConfigTopic,
    WatchConfigTopic,
)
from meshreg.client.commands import ConfigCall, ConfigListen, ConfigUnlisten
from meshreg.client.config_session import (
    CONFIG_RESYNC_INTERVAL,
    CONFIG_WRITE_ATTEMPT,
    KEPT_LISTEN_RETRY,
    READ_RETRY_PAUSE,
)
from meshreg.client.configs import (
    ConfigChanged,
    ConfigInfo,
    config_info_from_map,
    config_topic,
    decode_config_notification,
    decode_config_result,
)
from meshreg.client.messages import ReplyError, decode_notification_frames
from meshreg.client.session import ClientSession
from meshreg.configcenter.model import CONFIG_BEHIND_ATTEMPT, ConfigKey, content_md5
from meshreg.errors import (
    ErrorCode,
    OutcomeUnknownError,
    RemoteProtocolError,
    ServerError,
    ServerUnreachableError,
)

KEY = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")
READ_RETRY_PAUSE_MS = int(READ_RETRY_PAUSE * 1000)
FIELDS = {"namespace": KEY.namespace, "group": KEY.group, "data_id": KEY.data_id}


def entry(revision: int, content: str = "a: 1", **extra: Any) -> dict[str, Any]:
    """An entry map as a node sends it (ConfigEntry.to_wire() plus gray_served)."""
    m = {**FIELDS, "content": content, "type": "yaml", "md5": content_md5(content),
         "revision": revision, "modified": 1700000000.5, "modified_by": "n1", "tags": {},
         "description": "", "deleted": False, "change": "publish", "origin": "n1"}  # fmt: skip
    m.update(extra)
    decode_config_result("config_get", m)  # a shape the client accepts
    return m


def listen_answer(revision: int, content: str | None = "a: 1", deleted: bool = False) -> Any:
    return {
        "revision": revision,
        "entry": entry(revision, content) if content is not None else None,
        "deleted": deleted,
    }


def labelled(h: Harness, **labels: str) -> Harness:
    """The harness's session again, with client labels."""
    settings = dataclasses.replace(h.core.settings, labels=tuple(sorted(labels.items())))
    h.core = ClientSession(list(h.core.servers), settings, None)
    h.run(h.core.start(h.now))
    return h


def get(h: Harness, **fields: Any) -> Handle:
    handle = Handle()
    h.do(ConfigCall("config_get", KEY, {**FIELDS, **fields}, 3.0, handle))
    return handle


def calls(h: Harness) -> list[tuple[str | None, int]]:
    return [(a.content, a.revision) for a in h.actions if isinstance(a, CallConfigListener)]


def saves(h: Harness) -> list[int | None]:
    return [
        a.entry.revision if a.entry is not None else None
        for a in h.actions
        if isinstance(a, SaveConfig)
    ]


def listening(h: Harness, revision: int = 3, content: str = "a: 1") -> Handle:
    handle = Handle()
    h.do(ConfigListen(KEY, lambda c, r: None, 3.0, handle))
    (req,) = h.unanswered("config_listen")
    h.reply(req, listen_answer(revision, content))
    return handle


# -- never backwards, read your writes ----------------------------------------------------------
def test_a_read_that_finds_the_data_id_deleted_keeps_the_deletes_revision() -> None:
    """review38 F1: a client read a data id deleted at revision 2 (NOT_FOUND), then read
    revision 1 from a node that had not heard of the delete, and wrote it back to its
    disk copy. The NOT_FOUND names the delete's revision (``error.revision``): the next
    read asks for at least it."""
    h = Harness()
    get(h)
    h.reply(h.unanswered("config_get")[0], entry(1))
    get(h)
    (req,) = h.unanswered("config_get")
    gone = ReplyError(req.id, int(ErrorCode.NOT_FOUND), "does not exist (deleted at rev 2)",
                      revision=2)  # fmt: skip
    h.run(h.core.on_reply(req.to, gone, h.now))
    assert h.core.configs.seen_revision(KEY) == 2
    assert saves(h) == [1, None]  # the disk copy went
    get(h)
    assert h.unanswered("config_get")[0].fields["min_revision"] == 2
    # never there (no revision): nothing noted, as before
    other = KEY._replace(data_id="never")
    handle = Handle()
    h.do(ConfigCall("config_get", other, {**FIELDS, "data_id": "never"}, 3.0, handle))
    (req,) = [r for r in h.unanswered("config_get") if r.fields["data_id"] == "never"]
    h.fail(req, ErrorCode.NOT_FOUND, "does not exist")
    assert h.core.configs.seen_revision(other) == 0


def test_a_read_carries_the_highest_revision_seen_and_a_write_raises_it() -> None:
    h = Harness()
    get(h)
    (first,) = h.unanswered("config_get")
    assert first.fields["min_revision"] == 0
    h.reply(first, entry(4))
    pub = Handle()
    h.do(ConfigCall("config_publish", KEY, {**FIELDS, "content": "b: 2"}, 3.0, pub))
    h.reply(h.unanswered("config_publish")[0], entry(7, "b: 2"))
    done = h.outcome(pub)
    assert isinstance(done, Complete) and isinstance(done.result, ConfigInfo)
    assert done.result.revision == 7
    get(h)
    assert h.unanswered("config_get")[0].fields["min_revision"] == 7  # reads its own write
    assert h.core.configs.seen_revision(KEY._replace(data_id="other")) == 0


def test_a_node_that_is_behind_hands_the_read_to_the_next_server() -> None:
    h = Harness(servers=("a:1", "b:2", "c:3"))
    h.core.configs.note(KEY, 9)
    handle = get(h)
    (req,) = h.unanswered("config_get")
    h.fail(req, ErrorCode.UNAVAILABLE, "behind: holds revision 8, the client has seen 9")
    (again,) = h.unanswered("config_get")
    assert again.to == "b:2" and again.fields["min_revision"] == 9
    h.reply(again, entry(9))
    done = h.outcome(handle)
    assert isinstance(done, Complete) and done.result.revision == 9


def test_a_read_every_node_refuses_is_tried_again_after_a_pause_until_its_deadline() -> None:
    h = Harness(servers=("a:1",))
    handle = get(h)  # 3 s budget
    h.fail(h.unanswered("config_get")[0], ErrorCode.UNAVAILABLE, "catching up after a start")
    assert h.unanswered("config_get") == [] and h.outcome(handle) is None
    h.advance(READ_RETRY_PAUSE_MS - 1)
    assert h.unanswered("config_get") == []
    h.advance(1)
    h.fail(h.unanswered("config_get")[0], ErrorCode.UNAVAILABLE, "catching up after a start")
    h.advance(2 * READ_RETRY_PAUSE_MS + 1)  # the pause doubles
    (again,) = h.unanswered("config_get")
    assert len(h.requests("config_get")) == 3
    h.reply(again, entry(2))
    done = h.outcome(handle)
    assert isinstance(done, Complete) and done.result.revision == 2


def test_when_every_node_is_behind_the_error_names_the_servers_and_the_revision() -> None:
    h = Harness(servers=("a:1", "b:2"))
    h.core.configs.note(KEY, 9)
    handle = get(h)
    for _ in range(100):
        h.fail_all("config_get", ErrorCode.UNAVAILABLE, "behind")
        if h.outcome(handle) is not None:
            break
        h.advance(100)
    assert h.unanswered("config_get") == []
    assert h.now <= 3.0  # within the call's budget
    done = h.outcome(handle)
    assert isinstance(done, Fail) and isinstance(done.error, ServerError)
    text = str(done.error)
    assert "a:1, b:2" in text and "revision 9" in text and str(KEY) in text


BEHIND_MS = 1000  # the node holds a read it is behind on this long (config_plane.PARK_SECONDS)


def behind_nodes(h: Harness, handle: Handle, holds: int, seen: int) -> None:
    """Every node holds ``holds`` of KEY and the client has seen ``seen``: each read is
    answered UNAVAILABLE after the node's wait (1 s) and 5 ms on the wire, as a real node
    does (runtime/config_plane.py), unless the client switched its connection to another
    server meanwhile (the old connection's late answer is lost, as on a real DEALER)."""
    message = (f"config_get {KEY}: this node holds revision {holds} and you have seen {seen}; "
               "it may be catching up: retry shortly or on another node")  # fmt: skip
    for _ in range(50):
        if h.outcome(handle) is not None:
            return
        pending = h.unanswered("config_get")
        if not pending:
            h.advance(10)  # a pause between rounds
            continue
        (req,) = pending
        switched = len(h.connects())
        h.advance(BEHIND_MS + 5)
        now = h.unanswered("config_get")
        if now and now[0] is req and len(h.connects()) == switched:
            h.fail(req, ErrorCode.UNAVAILABLE, message)
    raise AssertionError("the read never ended")


@pytest.mark.parametrize("timeout", [3.0, 5.0])
def test_nodes_that_answer_behind_are_heard_and_the_error_says_what_they_answered(
    timeout: float,
) -> None:
    """review11's DR run: every node answered UNAVAILABLE ("holds revision 1 and you have
    seen 6") after its 1 s wait, but the client's read attempt was 1 s too: it gave up on
    each node just before its answer, switched servers, and said "no reply from meshreg
    server(s) ... is `meshreg node` running there?".  A read that carries a revision now
    waits longer than the node does, and the error says what the nodes answered, who, and
    what to try."""
    h = Harness(servers=("a:1", "b:2", "c:3"), attempt_ms=1000)  # the Client's default
    h.core.configs.note(KEY, 6)
    handle = Handle()
    h.do(ConfigCall("config_get", KEY, dict(FIELDS), timeout, handle))
    behind_nodes(h, handle, holds=1, seen=6)
    done = h.outcome(handle)
    assert isinstance(done, Fail)
    text = str(done.error)
    assert isinstance(done.error, ServerError), text
    assert done.error.code == ErrorCode.UNAVAILABLE
    assert "no reply" not in text and "running there" not in text, text
    assert "holds revision 1 and you have seen 6" in text, text
    assert "UNAVAILABLE from a:1" in text or "UNAVAILABLE from b:2" in text, text
    assert "a:1" in text and "b:2" in text, text  # who answered / was asked
    assert "new Client" in text, text  # what to try when no node will ever hold it
    assert h.connects() == ["a:1"]  # answers came: no server was suspected


def test_a_read_that_carries_a_revision_waits_for_the_node_longer_than_the_node_waits() -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=1000)
    get(h)
    h.reply(h.unanswered("config_get")[0], entry(4))
    get(h)  # min_revision 4 now: the node may hold it up to 1 s
    h.advance(BEHIND_MS + 100)
    assert h.connects() == ["a:1"]
    (req,) = h.unanswered("config_get")
    assert req.to == "a:1" and req.fields["min_revision"] == 4
    h.reply(req, entry(5))
    fresh = Harness(servers=("a:1", "b:2"), attempt_ms=1000)
    get(fresh)  # nothing seen: min_revision 0, the node answers at once: the usual 1 s
    fresh.advance(1001)
    assert fresh.connects() == ["a:1", "b:2"]


def test_other_errors_are_not_retried() -> None:
    h = Harness()
    handle = get(h)
    h.fail(h.unanswered("config_get")[0], ErrorCode.NOT_FOUND, "no such data id")
    assert h.unanswered("config_get") == []
    done = h.outcome(handle)
    assert isinstance(done, Fail) and done.error.code == ErrorCode.NOT_FOUND  # type: ignore[attr-defined]


def test_labels_go_with_reads_and_listens() -> None:
    h = labelled(Harness(), env="canary")
    get(h)
    assert h.unanswered("config_get")[0].fields["labels"] == {"env": "canary"}
    h.do(ConfigListen(KEY, lambda c, r: None, 3.0, Handle()))
    assert h.unanswered("config_listen")[0].fields["labels"] == {"env": "canary"}


def test_a_version_read_is_saved_once_per_revision() -> None:
    h = Harness()
    for revision in (3, 3, 4):
        get(h)
        h.reply(h.unanswered("config_get")[0], entry(revision))
    assert saves(h) == [3, 4]
    get(h, revision=2)  # a past revision is not the current one: not kept
    h.reply(h.unanswered("config_get")[0], entry(2))
    assert saves(h) == [3, 4]


def test_a_write_has_a_longer_attempt_and_is_not_resent_for_being_slow() -> None:
    h = Harness(attempt_ms=500)
    h.do(ConfigCall("config_publish", KEY, {**FIELDS, "content": "x"}, 5.0, Handle()))
    h.advance(int(CONFIG_WRITE_ATTEMPT * 1000) - 1)
    assert len(h.requests("config_publish")) == 1
    assert h.connects() == ["a:1"]
    h.advance(2)  # past its attempt budget: the server is suspected like for any request
    assert h.connects() == ["a:1", "b:2"]


# -- listening ----------------------------------------------------------------------------------
def test_listen_subscribes_listens_and_calls_back_with_the_current_version() -> None:
    h = Harness()
    got: list[tuple[str | None, int]] = []
    handle = Handle()
    h.do(ConfigListen(KEY, lambda c, r: got.append((c, r)), 3.0, handle))
    assert WatchConfigTopic(KEY) in h.actions
    (req,) = h.unanswered("config_listen")
    assert req.fields["revision"] == 0
    h.reply(req, listen_answer(3, "a: 1"))
    assert calls(h) == [("a: 1", 3)]
    done = h.outcome(handle)
    assert isinstance(done, Complete) and done.result.revision == 3
    assert saves(h) == [3]
    # a second listener is called at once with what is held, without a request
    h.do(ConfigListen(KEY, lambda c, r: None, 3.0, Handle()))
    assert calls(h)[-1] == ("a: 1", 3) and h.unanswered("config_listen") == []


def test_a_second_version_at_the_saved_revision_is_saved_too() -> None:
    """Two owners gave out one revision during a membership change: the client read X at
    r3, then Y, the version a majority acknowledged, at r3.  Y is saved over X (the disk
    copy kept X, served in an outage until r4, before: the save was skipped by revision)."""
    h = Harness()
    for content in ("x: 1", "y: 1", "y: 1"):
        handle = Handle()
        h.do(ConfigCall("config_get", KEY, dict(FIELDS), 3.0, handle))
        h.reply(h.unanswered("config_get")[0], entry(3, content))
        assert isinstance(h.outcome(handle), Complete)
    kept = [a.entry.content for a in h.actions if isinstance(a, SaveConfig) and a.entry]
    assert kept == ["x: 1", "y: 1"]  # (the same version again: not written twice)


def test_a_data_id_that_does_not_exist_is_called_back_with_none() -> None:
    h = Harness()
    h.do(ConfigListen(KEY, lambda c, r: None, 3.0, Handle()))
    h.reply(h.unanswered("config_listen")[0], {"revision": 0, "entry": None, "deleted": False})
    assert calls(h) == [(None, 0)]


def test_a_push_pulls_the_new_version_with_its_revision_as_the_floor() -> None:
    h = labelled(Harness(), env="canary")
    listening(h, 3)
    h.push(ConfigChanged(KEY, 3, content_md5("a: 1")))  # what we hold: nothing to do
    assert h.unanswered("config_get") == []
    h.push(ConfigChanged(KEY, 5, content_md5("a: 2")))
    (pull,) = h.unanswered("config_get")
    assert pull.fields["min_revision"] == 5 and pull.fields["labels"] == {"env": "canary"}
    h.reply(pull, entry(5, "a: 2"))
    assert calls(h)[-1] == ("a: 2", 5)
    assert saves(h) == [3, 5]


def test_a_push_while_a_pull_is_in_flight_pulls_again_after() -> None:
    h = Harness()
    listening(h, 3)
    h.push(ConfigChanged(KEY, 4, "m4"))
    h.push(ConfigChanged(KEY, 6, "m6"))
    (pull,) = h.unanswered("config_get")
    h.reply(pull, entry(4, "a: 4"))
    (again,) = h.unanswered("config_get")
    assert again.fields["min_revision"] == 6
    h.reply(again, entry(6, "a: 6"))
    assert calls(h)[-2:] == [("a: 4", 4), ("a: 6", 6)]
    assert h.unanswered("config_get") == []


def test_a_revision_that_changes_nothing_for_this_client_calls_no_one() -> None:
    h = Harness()
    listening(h, 3, "a: 1")
    h.push(ConfigChanged(KEY, 4, content_md5("a: 1"), gray=True))  # a gray version for others
    h.reply(h.unanswered("config_get")[0], entry(4, "a: 1", change="gray"))
    assert calls(h) == [("a: 1", 3)]
    assert h.core.configs.listens[KEY].revision == 4  # held: later pushes compare with it
    assert saves(h) == [3, 4]


def test_a_deleted_push_calls_back_with_none_and_removes_the_disk_copy() -> None:
    h = Harness()
    listening(h, 3)
    h.push(ConfigChanged(KEY, 4, "", deleted=True))
    assert calls(h)[-1] == (None, 4)
    assert [a for a in h.actions if isinstance(a, SaveConfig)][-1] == SaveConfig(KEY, None)
    assert h.unanswered("config_get") == []


def test_a_push_of_another_version_at_the_held_revision_pulls_it() -> None:
    """Two owners assigned revision 3 during a membership change; this listener pulled
    the one that lost; the acknowledged one won and its push comes at revision 3."""
    h = Harness()
    listening(h, 3, "a: lost")
    h.push(ConfigChanged(KEY, 3, content_md5("a: lost")))  # an echo: nothing to do
    assert h.unanswered("config_get") == []
    h.push(ConfigChanged(KEY, 3, content_md5("a: won")))
    (pull,) = h.unanswered("config_get")
    assert pull.fields["min_revision"] == 3
    h.reply(pull, entry(3, "a: won"))
    assert calls(h)[-1] == ("a: won", 3)
    h.push(ConfigChanged(KEY, 3, content_md5("a: won")))  # an echo again
    assert h.unanswered("config_get") == []


def test_a_listener_served_the_gray_version_pulls_only_when_a_push_says_it_changed() -> None:
    """review29 F2: every sync of the held revision made a gray listener pull the whole
    content again; the push's ``gray_md5`` tells it (an older node sends none: pull)."""
    h = Harness()
    handle = Handle()
    h.do(ConfigListen(KEY, lambda c, r: None, 3.0, handle))
    (req,) = h.unanswered("config_listen")
    main, gray = content_md5("a: 1"), content_md5("a: canary")
    held = entry(3, "a: canary", gray_served=True,
                 main={"content": "a: 1", "type": "yaml", "md5": main})  # fmt: skip
    h.reply(req, {"revision": 3, "entry": held, "deleted": False})
    for _ in range(3):  # syncs of what is held: nothing to pull
        h.push(ConfigChanged(KEY, 3, main, gray=True, gray_md5=gray))
    assert h.unanswered("config_get") == []
    h.push(ConfigChanged(KEY, 3, main, gray=True, gray_md5=content_md5("a: other")))
    (pull,) = h.unanswered("config_get")
    h.reply(pull, held)
    h.push(ConfigChanged(KEY, 3, content_md5("a: won"), gray=True, gray_md5=gray))  # main
    (pull,) = h.unanswered("config_get")
    h.reply(pull, held)
    h.push(ConfigChanged(KEY, 3, main, gray=True))  # an older node: cannot tell, pull
    assert len(h.unanswered("config_get")) == 1


def test_every_listened_data_id_is_listened_again_each_resync_interval() -> None:
    h = Harness()
    listening(h, 3)
    interval = int(CONFIG_RESYNC_INTERVAL * 1000)
    for _ in range(interval // 100 - 1):  # the server answers its probes
        h.advance(100)
        h.answer_all("ping", {"epoch": 1, "version": "1", "address": h.connected})
    h.advance(99)
    assert len(h.requests("config_listen")) == 1 and h.connects() == ["a:1"]
    h.advance(1)
    (again,) = h.unanswered("config_listen")
    assert again.fields["revision"] == 3  # held: the node answers only if it has newer
    h.reply(again, listen_answer(5, "a: 5"))  # a push was missed: the resync heals it
    assert calls(h)[-1] == ("a: 5", 5)


def test_a_resync_sends_the_held_md5_and_takes_another_version_of_the_held_revision() -> None:
    """The listener pulled the version that lost revision 3 and missed every push of the
    winner: its resync says what it holds (revision and md5) and the node's answer, at the
    same revision, replaces it."""
    h = Harness()
    first = Handle()
    h.do(ConfigListen(KEY, lambda c, r: None, 3.0, first))
    (req,) = h.unanswered("config_listen")
    assert "md5" not in req.fields  # nothing held yet: revision 0, no md5
    h.reply(req, listen_answer(3, "a: lost"))
    h.advance(int(CONFIG_RESYNC_INTERVAL * 1000))
    h.answer_all("ping", {"epoch": 1, "version": "1", "address": h.connected})
    (again,) = h.unanswered("config_listen")
    assert again.fields["revision"] == 3 and again.fields["md5"] == content_md5("a: lost")
    h.reply(again, listen_answer(3, "a: won"))
    assert calls(h)[-1] == ("a: won", 3)
    h.advance(int(CONFIG_RESYNC_INTERVAL * 1000))
    h.answer_all("ping", {"epoch": 1, "version": "1", "address": h.connected})
    (third,) = h.unanswered("config_listen")
    assert third.fields["md5"] == content_md5("a: won")
    h.reply(third, listen_answer(3, "a: won"))  # an older node answers the entry anyway
    assert calls(h)[-1] == ("a: won", 3) and len(calls(h)) == 2


def test_a_resync_answered_with_a_delete_at_the_held_revision_drops_the_content() -> None:
    h = Harness()
    listening(h, 3, "a: lost")
    h.advance(int(CONFIG_RESYNC_INTERVAL * 1000))
    h.answer_all("ping", {"epoch": 1, "version": "1", "address": h.connected})
    (again,) = h.unanswered("config_listen")
    h.reply(again, listen_answer(3, None, deleted=True))
    assert calls(h)[-1] == (None, 3)
    h.advance(int(CONFIG_RESYNC_INTERVAL * 1000))
    h.answer_all("ping", {"epoch": 1, "version": "1", "address": h.connected})
    (third,) = h.unanswered("config_listen")
    assert third.fields["revision"] == 3 and third.fields["md5"] == ""  # holds a delete


def test_a_failover_listens_again_on_the_new_server() -> None:
    h = Harness(attempt_ms=500)
    listening(h, 3)
    get(h)  # unanswered: the server is suspected (a read of a revision seen: after the
    h.advance(int(CONFIG_BEHIND_ATTEMPT * 1000) - 1)  # node's own 1 s wait, not 0.5 s)
    assert h.connects() == ["a:1"]
    h.advance(1)
    assert h.connects() == ["a:1", "b:2"]
    relisten = h.unanswered("config_listen")
    assert [r.to for r in relisten] == ["b:2"] and relisten[0].fields["revision"] == 3


def test_a_first_listen_nobody_answers_serves_the_disk_copy_then_the_live_one() -> None:
    h = Harness(attempt_ms=500)
    saved = config_info_from_map(entry(3, "a: 1"))
    saved = dataclasses.replace(saved, from_cache=True)
    handle = Handle()
    h.do(ConfigListen(KEY, lambda c, r: None, 1.0, handle, saved))
    h.advance(1000)
    done = h.outcome(handle)
    assert isinstance(done, Complete) and done.result.from_cache
    assert calls(h) == [("a: 1", 3)]
    warnings = [t for t in h.logs("warning") if "disk cache" in t]
    assert len(warnings) == 1 and str(KEY) in warnings[0] and "revision 3" in warnings[0]
    assert saves(h) == []  # the disk copy is not written back
    # a node answers at last (here a probe): listen again; the same content: no call
    for _ in range(100):
        if pings := h.unanswered("ping"):
            break
        h.advance(100)
    h.reply(pings[0], {"epoch": 1, "version": "1", "address": h.connected})
    (req,) = h.unanswered("config_listen")
    assert req.fields["revision"] == 0  # the disk copy may be another cluster's history
    h.reply(req, listen_answer(3, "a: 1"))
    assert calls(h) == [("a: 1", 3)]
    assert any("live data again" in t for t in h.logs("info"))
    assert not h.core.configs.listens[KEY].from_disk and not h.core.configs.stale


def test_a_first_listen_nobody_answers_without_a_disk_copy_fails_and_keeps_its_listener() -> None:
    """As Nacos's: the caller is told (raises), and the listener is called once a node
    answers (review51/57: it was dropped, the caller had to listen again)."""
    h = Harness(attempt_ms=500)
    handle = Handle()
    h.do(ConfigListen(KEY, lambda c, r: None, 1.0, handle))
    h.advance(1000)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and isinstance(done.error, ServerUnreachableError)
    assert done.error.listener_kept and "the listener is kept" in str(done.error)
    assert KEY in h.core.configs.listens and UnwatchConfigTopic(KEY) not in h.actions
    assert calls(h) == []
    for _ in range(100):  # a node answers at last (here a probe): listen again
        if pings := h.unanswered("ping"):
            break
        h.advance(100)
    h.reply(pings[0], {"epoch": 1, "version": "1", "address": h.connected})
    (req,) = h.unanswered("config_listen")
    h.reply(req, listen_answer(4, "a: 2"))
    assert calls(h) == [("a: 2", 4)]


def kept_by_a_node_not_ready() -> Harness:
    """A first listen the node answers UNAVAILABLE (not ready): raised, listener kept."""
    h = Harness(attempt_ms=500)
    handle = Handle()
    h.do(ConfigListen(KEY, lambda c, r: None, 1.0, handle))
    h.advance(300)
    for req in h.unanswered("config_listen"):
        h.fail(req, ErrorCode.UNAVAILABLE, "configs catching up from a majority")
    h.advance(1000)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and done.error.listener_kept, done
    return h


def test_a_kept_listen_a_node_not_ready_refused_is_tried_again_in_seconds() -> None:
    """review59 F3: the node answers (the client is not offline) but is not ready: the
    kept listener's next try was the 30 s resync; now every KEPT_LISTEN_RETRY."""
    h = kept_by_a_node_not_ready()
    sent, waited = len(h.requests("config_listen")), 0
    while len(h.requests("config_listen")) == sent:
        h.advance(50)
        waited += 50
        assert waited <= int(KEPT_LISTEN_RETRY * 1000) + 100, "not tried again in time"
    h.reply(h.requests("config_listen")[-1], listen_answer(0, None))  # absent: heard now
    assert calls(h) == [(None, 0)]
    h.advance(int(KEPT_LISTEN_RETRY * 1000) + 100)
    assert h.core.configs.listens[KEY].known
    assert h.core.configs._next_kept_listen == math.inf  # answered: no more kept tries


def test_a_kept_listen_refused_for_good_later_is_dropped_and_said() -> None:
    """review60 F4: listened to every 3 s for ever, the ACL's refusal never logged."""
    h = kept_by_a_node_not_ready()
    sent = len(h.requests("config_listen"))
    for _ in range(200):  # 20 s; the node answers at once: PERMISSION_DENIED
        h.advance(100)
        for req in h.unanswered("config_listen"):
            h.fail(req, ErrorCode.PERMISSION_DENIED, "key k may not read")
        for p in h.unanswered("ping"):
            h.reply(p, {"epoch": 1, "version": "1", "address": h.connected})
    assert len(h.requests("config_listen")) - sent <= 1 and KEY not in h.core.configs.listens
    assert any("listener(s) are dropped" in t for t in h.logs("warning"))


def test_a_first_listen_refused_for_good_keeps_nothing() -> None:
    """An error that waiting cannot cure (the ACL) drops the listener as before."""
    h = Harness(attempt_ms=500)
    handle = Handle()
    h.do(ConfigListen(KEY, lambda c, r: None, 1.0, handle))
    (req,) = h.unanswered("config_listen")
    h.fail(req, ErrorCode.PERMISSION_DENIED, "key k may not read")
    done = h.outcome(handle)
    assert isinstance(done, Fail) and not done.error.listener_kept
    assert KEY not in h.core.configs.listens and UnwatchConfigTopic(KEY) in h.actions


def test_the_same_callback_listening_twice_is_called_once_per_change() -> None:
    """review48: it ran twice for every change."""
    h = Harness()
    seen: list[tuple[str | None, int]] = []

    def cb(content: str | None, revision: int) -> None:
        seen.append((content, revision))

    handle = Handle()
    h.do(ConfigListen(KEY, cb, 3.0, handle))
    h.do(ConfigListen(KEY, cb, 3.0, Handle()))  # before the first answer: both wait
    (req,) = h.unanswered("config_listen")
    h.reply(req, listen_answer(3, "a: 1"))
    h.do(ConfigListen(KEY, cb, 3.0, Handle()))  # known now: called now
    assert len(calls(h)) == 3
    h.push(ConfigChanged(KEY, 5, content_md5("a: 2")))
    h.reply(h.unanswered("config_get")[0], entry(5, "a: 2"))
    assert calls(h)[3:] == [("a: 2", 5)]  # once


def test_unlisten_the_last_listener_unsubscribes_and_tells_the_node() -> None:
    h = Harness()
    listening(h, 3)
    handle = Handle()
    h.do(ConfigUnlisten(KEY, None, handle))
    assert isinstance(h.outcome(handle), Complete)
    assert UnwatchConfigTopic(KEY) in h.actions
    assert h.requests("config_unlisten")[0].fields == FIELDS
    h.push(ConfigChanged(KEY, 9, "m"))  # no longer listened: ignored
    assert h.unanswered("config_get") == []


# -- decoding (untrusted input) -------------------------------------------------------------------
def test_config_notifications_decode_and_a_body_for_another_topic_is_refused() -> None:
    body = {"v": 1, "kind": "config", **FIELDS, "revision": 4, "md5": "m", "deleted": False,
            "gray": True}  # fmt: skip
    frames = [config_topic(KEY), msgpack.packb(body)]
    assert decode_notification_frames(frames) == ConfigChanged(KEY, 4, "m", False, True)
    assert config_topic(KEY) == b"\x00config\x00public\x00DEFAULT_GROUP\x00app.yaml\x00"
    other = [config_topic(KEY._replace(data_id="x")), frames[1]]
    with pytest.raises(RemoteProtocolError, match="another data id"):
        decode_config_notification(other)
    with pytest.raises(RemoteProtocolError, match="revision"):
        decode_config_notification([frames[0], msgpack.packb({**body, "revision": -1})])


@pytest.mark.parametrize(
    ("op", "raw", "what"),
    [
        ("config_get", {**entry(1), "revision": "1"}, "revision"),
        ("config_get", {**entry(1), "content": 5}, "content"),
        ("config_get", {**entry(1), "tags": {"a": 1}}, "tags"),
        ("config_get", [], "not a map"),
        ("config_list", {"items": {}}, "items"),
        ("config_list", {"items": [], "next_cursor": 5}, "next_cursor"),
        ("config_history", {"items": [], "next_cursor": "x"}, "next_cursor"),
        ("config_listen", {"revision": 1, "entry": "x"}, "not a map"),
        ("config_force_ready", None, "not a map"),
        ("config_force_ready", {"node": "n:1", "was_ready": 0, "forced_ready": True}, "was_ready"),
        ("config_force_ready", {"node": "n:1", "was_ready": True}, "forced_ready"),
        ("config_force_ready", {"was_ready": True, "forced_ready": True}, "node"),
    ],
)
def test_malformed_config_results_name_the_field(op: str, raw: Any, what: str) -> None:
    with pytest.raises(RemoteProtocolError, match=what):
        decode_config_result(op, raw)


def test_the_force_ready_result_is_checked_and_kept_as_a_map() -> None:
    raw = {"node": "127.0.0.1:7800", "was_ready": False, "forced_ready": True, "later": 1}
    assert decode_config_result("config_force_ready", raw) == {
        "node": "127.0.0.1:7800", "was_ready": False, "forced_ready": True}  # fmt: skip


def test_a_malformed_reply_fails_only_its_call() -> None:
    h = Harness()
    handle = get(h)
    h.reply(h.unanswered("config_get")[0], {"revision": "x"})
    done = h.outcome(handle)
    assert isinstance(done, Fail) and "malformed" in str(done.error)


RID = "0123456789abcdef0123456789abcdef"


def test_a_write_with_a_request_id_is_resent_with_it_after_unavailable() -> None:
    """The node answered "outcome unknown": the write goes again, with the same request id
    (the cluster applies it at most once), to the next server, within the call's budget."""
    h = Harness(servers=("a:1", "b:2", "c:3"))
    pub = Handle()
    fields = {**FIELDS, "content": "b: 2", "if_revision": 4, "request_id": RID}
    h.do(ConfigCall("config_publish", KEY, fields, 5.0, pub))
    (first,) = h.unanswered("config_publish")
    h.fail(first, ErrorCode.UNAVAILABLE, "the responsible node did not answer: outcome unknown")
    (again,) = h.unanswered("config_publish")
    assert again.to == "b:2" and again.fields == {**first.fields, "resend": True}  # the
    # same id, labels or not, and it says it is a re-send (the owner checks the id first)
    assert "resend" not in first.fields
    assert again.fields["request_id"] == RID and "labels" not in again.fields
    h.reply(again, entry(5, "b: 2"))
    done = h.outcome(pub)
    assert isinstance(done, Complete) and done.result.revision == 5
    assert h.core.configs.seen_revision(KEY) == 5


def test_a_write_with_a_request_id_keeps_the_write_attempt_and_a_conflict_is_final() -> None:
    h = labelled(Harness(servers=("a:1", "b:2"), attempt_ms=500), env="canary")
    pub = Handle()
    h.do(ConfigCall("config_gray", KEY, {**FIELDS, "content": "g", "labels": {"k": "v"},
                                         "request_id": RID}, 5.0, pub))  # fmt: skip
    (req,) = h.unanswered("config_gray")
    assert req.fields["labels"] == {"k": "v"}  # the gray rule, not the client's labels
    h.advance(int(CONFIG_WRITE_ATTEMPT * 1000) - 1)
    assert len(h.requests("config_gray")) == 1  # not re-sent for being slow
    h.fail(req, ErrorCode.CONFLICT, "is at revision 3, not 2")
    done = h.outcome(pub)
    assert isinstance(done, Fail) and len(h.requests("config_gray")) == 1


def test_a_write_without_a_request_id_is_not_resent_after_unavailable() -> None:
    h = Harness(servers=("a:1", "b:2"))
    pub = Handle()
    h.do(ConfigCall("config_publish", KEY, {**FIELDS, "content": "x"}, 5.0, pub))
    h.fail(h.unanswered("config_publish")[0], ErrorCode.UNAVAILABLE, "outcome unknown")
    done = h.outcome(pub)
    assert isinstance(done, Fail) and len(h.requests("config_publish")) == 1


def test_a_final_refusal_after_an_unknown_outcome_does_not_say_nothing_was_written() -> None:
    """The first attempt's outcome is unknown (it may still land); the last one was refused
    by a minority node: the caller must not be told that nothing was written."""
    h = Harness(servers=("a:1", "b:2"))
    pub = Handle()
    fields = {**FIELDS, "content": "x", "request_id": RID}
    h.do(ConfigCall("config_publish", KEY, fields, 0.5, pub))
    h.fail(h.unanswered("config_publish")[0], ErrorCode.UNAVAILABLE, "outcome is unknown")
    while h.outcome(pub) is None:
        for req in h.unanswered("config_publish"):
            h.fail(req, ErrorCode.UNAVAILABLE, "minority: nothing was written; retry")
        h.advance(10)
    done = h.outcome(pub)
    # an OutcomeUnknownError naming the id to re-send (it was a ServerError that said
    # "re-send it with the same request_id" without naming it: a CLI user could not)
    assert isinstance(done, Fail) and isinstance(done.error, OutcomeUnknownError), done
    text = str(done.error)
    assert "nothing was written" not in text and "this attempt wrote nothing" in text
    assert "unknown outcome" in text and len(h.requests("config_publish")) >= 3
    assert done.error.request_id == RID and f"--request-id {RID}" in text


def test_a_write_no_node_answers_fails_with_outcome_unknown_naming_its_request_id() -> None:
    """The call's deadline passes with no answer from any server: the write may have been
    applied, so the error says the outcome is unknown and names the id to re-send it with."""
    h = Harness(servers=("a:1", "b:2"))
    pub = Handle()
    h.do(ConfigCall("config_publish", KEY, {**FIELDS, "content": "x", "request_id": RID}, 3.0,
                    pub))  # fmt: skip
    h.advance(3100)
    done = h.outcome(pub)
    assert isinstance(done, Fail) and isinstance(done.error, OutcomeUnknownError), done
    assert isinstance(done.error, ServerUnreachableError)  # still what callers catch
    assert done.error.request_id == RID
    text = str(done.error)
    assert "outcome of this config_publish is unknown" in text and f"--request-id {RID}" in text
    assert {s.fields["request_id"] for s in h.requests("config_publish")} == {RID}


def test_a_refusal_after_a_timed_out_attempt_does_not_say_nothing_was_written() -> None:
    """The first attempt timed out at the session level (it may have landed: the session
    failed over and sent it again); the second server refuses it "nothing was written":
    true of its own attempt only."""
    h = Harness(servers=("a:1", "b:2"))
    pub = Handle()
    h.do(ConfigCall("config_publish", KEY, {**FIELDS, "content": "x", "request_id": RID},
                    CONFIG_WRITE_ATTEMPT + 0.5, pub))  # fmt: skip
    h.advance(int(CONFIG_WRITE_ATTEMPT * 1000) + 10)  # no answer: failover, sent again
    (again,) = h.unanswered("config_publish")
    assert again.to == "b:2", again
    first = h.requests("config_publish")[0]  # the session's own re-send says it is one
    assert "resend" not in first.fields and again.fields["resend"] is True
    assert again.fields["request_id"] == first.fields["request_id"] == RID
    h.fail(again, ErrorCode.UNAVAILABLE, "minority: nothing was written; retry")
    while h.outcome(pub) is None:
        h.fail_all("config_publish", ErrorCode.UNAVAILABLE, "minority: nothing was written")
        h.advance(10)
    done = h.outcome(pub)
    assert isinstance(done, Fail) and isinstance(done.error, OutcomeUnknownError), done
    assert "nothing was written" not in str(done.error) and "unknown outcome" in str(done.error)
    assert done.error.request_id == RID and f"request_id={RID!r}" in str(done.error)


@pytest.mark.parametrize(
    ("first", "unwritten"),
    [("minority: nothing was written", True),
     ("sent but not acknowledged in time: the outcome is unknown", False)],
)  # fmt: skip
def test_a_write_no_later_server_received_is_as_the_answer_before_said(
    first: str, unwritten: bool
) -> None:
    """review57 F1: a node answered "nothing was written" and the servers asked after it
    never got the request (no handshake): UNAVAILABLE unwritten, not "outcome unknown";
    after an answer that did not say nothing was written, the outcome stays unknown."""
    from meshreg.client.agent import DirectSend

    h = Harness(servers=("a:1", "b:2", "c:3"), direct=DirectSend.NOT_CONNECTED)
    handle = Handle()
    fields = {"namespace": "public", "group": "DEFAULT_GROUP", "data_id": "app.yaml",
              "content": "x", "request_id": "r1"}  # fmt: skip
    h.do(ConfigCall("config_publish", KEY, fields, 0.6, handle))
    h.fail(h.unanswered("config_publish")[0], ErrorCode.UNAVAILABLE, first)
    h.advance(1000)
    error = h.outcome(handle).error  # type: ignore[union-attr]
    if unwritten:
        assert isinstance(error, ServerError) and not isinstance(error, OutcomeUnknownError)
        assert error.unwritten and "then no answer from" in str(error)
    else:
        assert isinstance(error, OutcomeUnknownError)


def test_a_refusal_then_silence_of_the_others_does_not_say_nothing_was_written() -> None:
    """review81 F4: a minority node answered "nothing was written", the copies re-sent to
    the others left and were not answered (cut off: they may still land): the outcome is
    unknown, and the message said both "nothing was written" and "the outcome is unknown".
    Now: that node wrote nothing; the outcome is unknown."""
    h = Harness(servers=("a:1", "b:2", "c:3"))
    handle = Handle()
    fields = {"namespace": "public", "group": "DEFAULT_GROUP", "data_id": "app.yaml",
              "content": "x", "request_id": "r1"}  # fmt: skip
    h.do(ConfigCall("config_publish", KEY, fields, 0.6, handle))
    h.fail(h.unanswered("config_publish")[0], ErrorCode.UNAVAILABLE,
           "minority: nothing was written; retry")  # fmt: skip
    h.advance(1000)
    error = h.outcome(handle).error  # type: ignore[union-attr]
    assert isinstance(error, OutcomeUnknownError), error
    text = str(error)
    assert "that node wrote nothing" in text and "then no answer from" in text, text
    assert "nothing was written" not in text, text


def test_a_write_every_node_refuses_as_late_says_to_check_this_clients_clock() -> None:
    """review of 2026-12-07: a client whose clock is behind had every write refused "after
    its deadline ... check the clocks (NTP)", and the final error then added "the cluster
    is catching up or has no majority: retry in a moment"."""
    h = Harness(servers=("a:1", "b:2"))
    pub = Handle()
    h.do(ConfigCall("config_publish", KEY, {**FIELDS, "content": "x", "request_id": RID}, 0.5,
                    pub))  # fmt: skip
    late = ("config_publish: the write reached node a:1 4.23s after its deadline (the "
            "client's clock): nothing was written (...); check the clocks (NTP)")  # fmt: skip
    while h.outcome(pub) is None:
        for req in h.unanswered("config_publish"):
            h.fail(req, ErrorCode.UNAVAILABLE, late)
        h.advance(10)
    done = h.outcome(pub)
    assert isinstance(done, Fail), done
    text = str(done.error)
    assert "check NTP on this host" in text and "catching up" not in text, text
