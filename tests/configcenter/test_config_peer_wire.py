"""The config peer messages (wire/config_peer): every message round-trips, every field is
validated, and no input - random bytes, random structures, valid messages mutated - gets
past the parser holding a value a node could not have sent (or raises anything but
RemoteProtocolError)."""

from __future__ import annotations

import copy
import ipaddress
import math
from dataclasses import replace
from typing import Any

import msgpack
import pytest
from helpers import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import (
    ConfigDigest,
    ConfigEntry,
    ConfigKey,
    check_config_key,
    check_content,
    check_request_id,
    content_md5,
)
from meshreg.configcenter.replication import (
    FetchVersions,
    SendAck,
    SendCommit,
    SendDigests,
    SendHave,
    SendKeyVersions,
    SendRecord,
    SendVersions,
)
from meshreg.errors import ErrorCode, RemoteProtocolError
from meshreg.wire import limits
from meshreg.wire.config_peer import (
    CONFIG_FRAME,
    CONFIG_PEER_OPS,
    HAVE_CHUNK_IDS,
    MAX_BATCH_ITEMS,
    VERSIONS_CHUNK_BYTES,
    ConfigAck,
    ConfigBatch,
    ConfigCommit,
    ConfigDigests,
    ConfigFetch,
    ConfigForward,
    ConfigForwardReply,
    ConfigHave,
    ConfigKeyVersions,
    ConfigRecord,
    ConfigSync,
    ConfigVersions,
    config_frame_bytes,
    config_peer_frame_bytes,
    decode_config_peer,
    encode_batches,
    encode_config_peer,
    encode_replication_effect,
    entry_to_wire,
)
from meshreg.wire.replies import encode_error

FUZZ = fuzz_settings(300)
ME = "127.0.0.1:7800"
KEY = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")


def entries() -> list[ConfigEntry]:
    store = ConfigStore("127.0.0.1:7810")
    first = store.publish(KEY, "a: 1", "yaml", now=1.0, by="ops", description="d",
                          tags={"team": "core"})  # fmt: skip
    gray = store.publish_gray(KEY, "a: 2", labels={"canary": "yes"}, clients=["10.0.0.1"],
                              now=2.0, request_id="r" * 32)  # fmt: skip
    gone = store.delete(KEY, now=3.0)
    return [first, gray, gone]


ENTRIES = entries()
DIGEST = ConfigDigest(KEY, 3, ENTRIES[2].md5, ENTRIES[2].origin, True, 12345)
EFFECTS = [
    SendRecord("p", ENTRIES[1]),
    SendAck("p", KEY, 2, ENTRIES[1].origin, ENTRIES[1].md5, True, None),
    SendAck("p", KEY, 2, ENTRIES[1].origin, ENTRIES[1].md5, False, ENTRIES[0]),
    SendCommit("p", KEY, 2, ENTRIES[1].origin, ENTRIES[1].md5),
    FetchVersions("p", KEY),
    SendKeyVersions("p", KEY, tuple(ENTRIES)),
    SendDigests("p", (DIGEST, ConfigDigest(KEY, 0, "", "", False)), True),
    SendVersions("p", tuple(ENTRIES)),
    SendDigests("p", (DIGEST,), False, None, KEY),  # a round's first step: (start, KEY]
    SendHave("p", ((KEY, ((1, 7), (2, 2**64 - 1), (3, 0))),), False),
]


def decoded(frames: list[bytes]) -> Any:
    assert frames[0] == CONFIG_FRAME
    return decode_config_peer(frames[1])


def test_every_replication_message_round_trips() -> None:
    out = [decoded(f) for e in EFFECTS for f in encode_replication_effect(ME, e)]
    assert all(m.sender == ME for m in out)
    record, ack, nack, commit, fetch, key_versions, digests, versions, step, have = out
    assert record == ConfigRecord(ME, ENTRIES[1])
    assert ack == ConfigAck(ME, KEY, 2, ENTRIES[1].origin, ENTRIES[1].md5, True, None)
    assert nack.current == ENTRIES[0] and not nack.ok
    assert commit == ConfigCommit(ME, KEY, 2, ENTRIES[1].origin, ENTRIES[1].md5)
    assert fetch == ConfigFetch(ME, KEY)
    assert key_versions == ConfigKeyVersions(ME, KEY, tuple(ENTRIES))
    assert digests == ConfigDigests(ME, EFFECTS[6].digests, True)  # type: ignore[union-attr]
    assert versions == ConfigVersions(ME, tuple(ENTRIES))
    assert step == ConfigDigests(ME, (DIGEST,), False, None, KEY)
    assert have == ConfigHave(ME, EFFECTS[9].items, False)  # type: ignore[union-attr]
    sync = decoded(encode_config_peer("config_sync", ME, after=None))
    assert sync == ConfigSync(ME, None, paged=True)  # the first page
    sync = decoded(encode_config_peer("config_sync", ME, after=list(KEY)))
    assert sync == ConfigSync(ME, KEY, paged=True)
    legacy = decoded(encode_config_peer("config_sync", ME))  # a node before pages
    assert legacy == ConfigSync(ME, None, paged=False)


def _digests_body(digests: list[ConfigDigest], **fields: Any) -> bytes:
    wire = [[*d.key, d.revision, d.md5, d.origin, d.committed, d.history] for d in digests]
    return encode_config_peer("config_digests", ME, digests=wire, reply=False, **fields)[1]


LOW, HIGH = ConfigKey("public", "G", "a"), ConfigKey("public", "G", "m")


@pytest.mark.parametrize(
    ("fields", "keys", "words"),
    [
        ({"after": list(HIGH), "upto": list(LOW)}, [], "'after' must come before 'upto'"),
        ({"after": list(LOW), "upto": list(LOW)}, [], "'after' must come before 'upto'"),
        ({"after": list(LOW), "upto": list(HIGH)}, [LOW], "outside the range"),
        ({"after": list(LOW), "upto": list(HIGH)}, [ConfigKey("public", "G", "z")], "outside"),
        ({"after": None, "upto": list(LOW)}, [HIGH], "outside the range"),
        ({"after": list(HIGH), "upto": None}, [LOW], "outside the range"),
        ({"after": ["public", "G"], "upto": None}, [], "[namespace, group, data_id]"),
        ({"after": list(LOW), "upto": list(HIGH)}, [HIGH, HIGH, LOW], "outside the range"),
    ],
)
def test_a_page_of_digests_must_hold_only_its_range(
    fields: dict[str, Any], keys: list[ConfigKey], words: str
) -> None:
    """A page (or a round's step) claims to list every data id of its range: one that
    names a data id outside it, or an empty or inverted range, is refused whole."""
    digests = [ConfigDigest(k, 1, "0" * 32, ME, True, 1) for k in keys]
    with pytest.raises(RemoteProtocolError) as info:
        decode_config_peer(_digests_body(digests, **fields))
    assert words in info.value.message


def test_a_catch_up_number_goes_with_the_ask_and_comes_back_with_the_page() -> None:
    """After a rearm (ready.py) the asks carry a number and the pages echo it; absent, 0."""
    sync = decoded(encode_config_peer("config_sync", ME, after=None, ask=7))
    assert sync == ConfigSync(ME, None, paged=True, ask=7)
    (frames,) = encode_replication_effect(ME, SendDigests("p", (DIGEST,), False, None, KEY, 7))
    page = decoded(frames)
    assert isinstance(page, ConfigDigests) and page.ask == 7 and page.upto == KEY
    (frames,) = encode_replication_effect(ME, SendDigests("p", (DIGEST,), False, None, KEY))
    assert b"ask" not in frames[1]  # none: not sent (a page as before)
    for bad in (0, -1, 2**31, "7", 1.5, True):
        with pytest.raises(RemoteProtocolError) as info:
            decode_config_peer(encode_config_peer("config_sync", ME, after=None, ask=bad)[1])
        assert "field 'ask' must be an integer in 1..2147483647" in info.value.message
        with pytest.raises(RemoteProtocolError):
            decode_config_peer(_digests_body([], after=None, upto=None, ask=bad))


def test_a_store_that_started_empty_says_so_and_a_page_says_it_knew_the_asker() -> None:
    """review42 F1: ``fresh`` on digests and key versions (the sender's store started
    empty and has not caught up: counted by nobody), ``known`` on digests (the sender saw
    the receiver's store whole before), ``joining`` on digests (review43 F1: it joins a
    cluster that holds configs); absent when false; anything but a boolean (or nil) is
    refused."""
    (frames,) = encode_replication_effect(
        ME, SendDigests("p", (DIGEST,), False, None, KEY, fresh=True, known=True, joining=True)
    )
    page = decoded(frames)
    assert isinstance(page, ConfigDigests) and page.fresh and page.known and page.joining
    (frames,) = encode_replication_effect(ME, SendDigests("p", (DIGEST,), False, None, KEY))
    assert b"fresh" not in frames[1] and b"known" not in frames[1] and b"joining" not in frames[1]
    plain = decoded(frames)
    assert isinstance(plain, ConfigDigests) and not plain.fresh and not plain.known
    assert not plain.joining
    (frames,) = encode_replication_effect(ME, SendKeyVersions("p", KEY, tuple(ENTRIES), "", True))
    versions = decoded(frames)
    assert isinstance(versions, ConfigKeyVersions) and versions.fresh
    nil = decode_config_peer(_digests_body([], after=None, upto=None, fresh=None))
    assert isinstance(nil, ConfigDigests) and not nil.fresh
    for name in ("fresh", "known", "joining"):
        for bad in (1, "true", [], {}):
            with pytest.raises(RemoteProtocolError) as info:
                decode_config_peer(_digests_body([], after=None, upto=None, **{name: bad}))
            assert f"field '{name}' must be true or false" in info.value.message
    body = encode_config_peer("config_key_versions", ME, key=list(KEY), entries=[], fresh=2)[1]
    with pytest.raises(RemoteProtocolError):
        decode_config_peer(body)
    for bad in (-1, "2", 2**63, True):  # review44 F5's purged floor: a revision or absent
        body = encode_config_peer("config_key_versions", ME, key=list(KEY), entries=[], floor=bad)
        with pytest.raises(RemoteProtocolError):
            decode_config_peer(body[1])


def test_a_page_of_digests_within_its_range_is_accepted() -> None:
    inside = [ConfigDigest(ConfigKey("public", "G", k), 1, "0" * 32, ME, True, 1)
              for k in ("b", "c", "m")]  # fmt: skip
    page = decode_config_peer(_digests_body(inside, after=list(LOW), upto=list(HIGH)))
    assert isinstance(page, ConfigDigests) and page.digests == tuple(inside)
    assert (page.after, page.upto) == (LOW, HIGH)
    last = decode_config_peer(_digests_body(inside, after=list(LOW), upto=None))
    assert isinstance(last, ConfigDigests) and (last.after, last.upto) == (LOW, None)


def test_a_have_list_carries_the_senders_window() -> None:
    items = ((KEY, ((1, 7), (2, 9))),)
    (have,) = [decoded(f) for f in encode_replication_effect(ME, SendHave("p", items, False, 5))]
    assert have == ConfigHave(ME, items, False, 5)
    body = msgpack.unpackb(encode_replication_effect(ME, SendHave("p", items, False))[0][1])
    assert "keep" not in body  # no limit: not sent (an older node never sends it either)
    for bad in (0, -1, "5", 2**63):
        with pytest.raises(RemoteProtocolError) as info:
            decode_config_peer(msgpack.packb({**body, "keep": bad}))
        assert "'keep'" in info.value.message


def test_have_lists_are_sent_in_bounded_chunks() -> None:
    """1,024 data ids with 100 revisions kept each: messages of at most HAVE_CHUNK_IDS
    revisions, never splitting one data id's list, together the whole list in order."""
    keys = [ConfigKey("public", "G", f"d{i:04d}") for i in range(1024)]
    items = tuple((k, tuple((r, r * 7) for r in range(1, 101))) for k in keys)
    items += ((KEY, tuple((r, 1) for r in range(1, HAVE_CHUNK_IDS + 2))),)  # alone, whole
    messages = [decoded(f) for f in encode_replication_effect(ME, SendHave("p", items, True))]
    sizes = [sum(len(ids) for _, ids in m.items) for m in messages]
    assert all(isinstance(m, ConfigHave) and m.reply for m in messages)
    assert max(sizes[:-1]) <= HAVE_CHUNK_IDS and sizes[-1] == HAVE_CHUNK_IDS + 1
    assert len(messages) == 1 + math.ceil(1024 * 100 / (HAVE_CHUNK_IDS // 100 * 100))
    assert tuple(item for m in messages for item in m.items) == items


def test_forwards_round_trip() -> None:
    request = {"v": 1, "id": 9, "op": "config_publish", "data_id": "app.yaml", "content": "x"}
    fwd = decoded(encode_config_peer("config_forward", ME, tag=5, request=request, by="ops"))
    assert isinstance(fwd, ConfigForward) and fwd.tag == 5 and fwd.by == "ops"
    assert fwd.request.key == KEY and fwd.request.content == "x"
    assert not fwd.reply_here  # absent (an older node): answered on the owner's DEALER
    here = decoded(encode_config_peer("config_forward", ME, tag=5, request=request, by="ops",
                                      reply_here=True))  # fmt: skip
    assert here.reply_here
    for bad in (1, "yes"):
        with pytest.raises(RemoteProtocolError, match="'reply_here' must be true or false"):
            decoded(encode_config_peer("config_forward", ME, tag=5, request=request, by="o",
                                       reply_here=bad))  # fmt: skip
    ok = decoded(encode_config_peer("config_forward_reply", ME, tag=5, ok=True,
                                    entry=entry_to_wire(ENTRIES[0]), gray=False))  # fmt: skip
    assert ok == ConfigForwardReply(ME, 5, True, ENTRIES[0], False, None, "")
    err = decoded(encode_config_peer("config_forward_reply", ME, tag=5, ok=False, code=11,
                                     message="is at revision 3, not 2"))  # fmt: skip
    assert err.code is ErrorCode.CONFLICT and err.message == "is at revision 3, not 2"
    assert not err.unwritten  # absent: the outcome may be a write
    none = decoded(encode_config_peer("config_forward_reply", ME, tag=5, ok=False, code=8,
                                      message="minority", written=False))  # fmt: skip
    assert none.unwritten and none.code is ErrorCode.UNAVAILABLE
    assert not none.unheard  # absent: an owner's refusal, relayed as it is
    for bad in (0, "no", None):
        with pytest.raises(RemoteProtocolError, match="'written' must be a boolean"):
            decoded(encode_config_peer("config_forward_reply", ME, tag=5, ok=False, code=8,
                                       message="m", written=bad))  # fmt: skip
    # an owner that has not heard the sender yet: nothing written, worth trying again
    unheard = decoded(encode_config_peer("config_forward_reply", ME, tag=5, ok=False, code=8,
                                         message="m", written=False, unheard=True))  # fmt: skip
    assert unheard.unheard and unheard.unwritten
    with pytest.raises(RemoteProtocolError, match="'unheard' must be true or false"):
        decoded(encode_config_peer("config_forward_reply", ME, tag=5, ok=False, code=8,
                                   message="m", written=False, unheard=1))  # fmt: skip
    with pytest.raises(RemoteProtocolError, match="'unheard' needs 'written' false"):
        decoded(encode_config_peer("config_forward_reply", ME, tag=5, ok=False, code=8,
                                   message="m", unheard=True))  # fmt: skip
    # a CAS's CONFLICT carries the current revision (0: none); with another code it is
    # ignored (a later node may send it with others)
    for current in (0, 3):
        cas = decoded(encode_config_peer("config_forward_reply", ME, tag=5, ok=False, code=11,
                                         message="m", current=current))  # fmt: skip
        assert cas.current == current
    assert err.current is None
    other = decoded(encode_config_peer("config_forward_reply", ME, tag=5, ok=False, code=8,
                                       message="m", current=3))  # fmt: skip
    assert other.current is None and other.code is ErrorCode.UNAVAILABLE
    for bad in (-1, "3", 2**63):
        with pytest.raises(RemoteProtocolError, match="'current'"):
            decoded(encode_config_peer("config_forward_reply", ME, tag=5, ok=False, code=11,
                                       message="m", current=bad))  # fmt: skip


def test_an_error_reply_says_a_write_wrote_nothing_in_a_field() -> None:
    """review21 F5: ``error.written`` false (only then), decoded into the client's error."""
    from meshreg.client.messages import decode_reply_frames
    from meshreg.errors import server_error

    body = encode_error(4, ErrorCode.UNAVAILABLE, "x: nothing was written", unwritten=True)
    assert msgpack.unpackb(body)["error"]["written"] is False
    reply = decode_reply_frames([b"", body])
    assert reply.unwritten and server_error(reply.code, reply.message, "n", True).unwritten
    plain = decode_reply_frames([b"", encode_error(4, ErrorCode.UNAVAILABLE, "unknown")])
    assert "written" not in msgpack.unpackb(encode_error(4, ErrorCode.UNAVAILABLE, "u"))["error"]
    assert not plain.unwritten
    # a CAS's CONFLICT names the current revision in ``current``, 0 included (no such data
    # id): never in ``revision``, whose 0 a client before 2026-12-05 refuses (code review)
    for current in (0, 7):
        body = encode_error(4, ErrorCode.CONFLICT, "c", current=current)
        assert "revision" not in msgpack.unpackb(body)["error"]
        cas = decode_reply_frames([b"", body])
        error = server_error(cas.code, cas.message, "n", current=cas.current)
        assert type(error).__name__ == "ConflictError" and error.revision == current
    with pytest.raises(RemoteProtocolError, match="not a revision"):  # a delete's is >= 1
        decode_reply_frames([b"", encode_error(4, ErrorCode.NOT_FOUND, "gone", revision=0)])


def test_versions_are_sent_in_bounded_chunks() -> None:
    store = ConfigStore(ME)
    big = [store.publish(ConfigKey("public", "G", f"d{i}"), "x" * 1_000_000, now=1.0)
           for i in range(10)]  # fmt: skip
    messages = encode_replication_effect(ME, SendVersions("p", tuple(big)))
    assert len(messages) == 2  # 4 MiB of content per message, plus the entry that crossed it
    assert all(len(m[1]) <= VERSIONS_CHUNK_BYTES + 1_100_000 for m in messages)
    assert [e for m in messages for e in decoded(m).entries] == big


def test_frame_limits_grow_with_the_content_cap_only_for_configs() -> None:
    assert config_frame_bytes(1024) == limits.MAX_FRAME_BYTES  # never below the registry's
    assert config_frame_bytes(1 << 20) == 2 * ((1 << 20) + 65536)
    assert config_peer_frame_bytes(1 << 20) >= limits.MAX_PEER_BODY_BYTES + 1024
    cap = 10 << 20
    assert config_peer_frame_bytes(cap) >= VERSIONS_CHUNK_BYTES + 2 * cap


def valid_bodies() -> list[dict[str, Any]]:
    bodies = [msgpack.unpackb(f[1]) for e in EFFECTS for f in encode_replication_effect(ME, e)]
    request = {"v": 1, "id": 9, "op": "config_gray", "data_id": "a", "content": "x",
               "labels": {"k": "v"}}  # fmt: skip
    bodies.append(msgpack.unpackb(encode_config_peer("config_forward", ME, tag=1,
                                                     request=request, by="")[1]))  # fmt: skip
    bodies.append(msgpack.unpackb(encode_config_peer("config_forward_reply", ME, tag=1, ok=False,
                                                     code=8, message="m")[1]))  # fmt: skip
    bodies.extend(msgpack.unpackb(f[1]) for f in encode_batches(ME, EFFECTS[:4]))
    return bodies


VALID = valid_bodies()


def test_every_op_has_a_valid_example() -> None:
    assert {b["op"] for b in VALID} | {"config_sync"} == set(CONFIG_PEER_OPS)


def test_a_turn_of_records_acks_and_commits_is_one_batch_in_order() -> None:
    batch = encode_batches(ME, EFFECTS[:4])
    assert len(batch) == 1 and msgpack.unpackb(batch[0][1])["op"] == "config_batch"
    singles = [decoded(f) for e in EFFECTS[:4] for f in encode_replication_effect(ME, e)]
    assert decoded(batch[0]) == ConfigBatch(ME, tuple(singles))
    # one item: its own single message, as before batches
    assert [decoded(f) for f in encode_batches(ME, EFFECTS[:1])] == singles[:1]
    assert encode_batches(ME, []) == []


def test_batches_are_bounded_by_items_and_content() -> None:
    commit = EFFECTS[3]
    many = encode_batches(ME, [commit] * (MAX_BATCH_ITEMS + 2))
    assert [len(decoded(m).items) for m in many] == [MAX_BATCH_ITEMS, 2]
    store = ConfigStore(ME)
    big = [SendRecord("p", store.publish(ConfigKey("public", "G", f"d{i}"), "x" * 1_000_000,
                                         now=1.0)) for i in range(10)]  # fmt: skip
    messages = encode_batches(ME, big)
    assert len(messages) == 3  # 4 + 4 + 2 records: a batch stays within 4 MiB
    assert all(len(m[1]) <= VERSIONS_CHUNK_BYTES + 200 for m in messages)
    assert [i.entry for m in messages for i in decoded(m).items] == [r.entry for r in big]
    # metadata counts too: gray rules naming 1,000 client addresses of ~39 bytes each
    clients = [str(ipaddress.IPv6Address((0x2001_0DB8_AAAA_BBBB_CCCC_DDDD << 32) + 0x1111_1111 + i))
               for i in range(1000)]  # fmt: skip
    keys = [ConfigKey("public", "G", f"w{i}") for i in range(240)]
    for k in keys:
        store.publish(k, "main", now=1.0)
    wide = [SendRecord("p", store.publish_gray(k, "g", clients=clients, now=2.0)) for k in keys]
    messages = encode_batches(ME, wide)
    assert len(messages) >= 3 and all(len(m[1]) <= VERSIONS_CHUNK_BYTES + 200 for m in messages)
    assert [i.entry for m in messages for i in decoded(m).items] == [r.entry for r in wide]


@pytest.mark.parametrize("n", [2, 15, 16, 17, 300])
def test_a_spliced_batch_is_the_packed_map(n: int) -> None:
    effects = [EFFECTS[3]] * n
    (frames,) = encode_batches(ME, effects)
    items = [msgpack.unpackb(f[1]) for e in effects for f in encode_replication_effect(ME, e)]
    for item in items:
        del item["v"], item["from"]
    assert frames[1] == encode_config_peer("config_batch", ME, items=items)[1]


@pytest.mark.parametrize(
    ("items", "words"),
    [
        ([], "'items' must be an array of 1.."),
        ("x", "'items' must be an array of 1.."),
        ([{}] * (MAX_BATCH_ITEMS + 1), "'items' must be an array of 1.."),
        ([{"op": "config_sync"}], "item 0: must be a map whose 'op' is one of"),
        ([{"op": "config_batch", "items": []}], "item 0: must be a map whose 'op'"),
        ([{"op": "config_forward"}], "item 0: must be a map whose 'op'"),
        (["config_commit"], "item 0: must be a map"),
        ("second-bad", "item 1 (config_commit): field 'md5' must be 32 lowercase hex"),
        ("bad-key", "item 0 (config_ack): "),
    ],
)
def test_every_batch_item_is_checked(items: Any, words: str) -> None:
    good = msgpack.unpackb(encode_batches(ME, EFFECTS[:4])[0][1])
    if items == "second-bad":
        items = copy.deepcopy(good["items"][2:])
        items[1]["md5"] = "nope"
    elif items == "bad-key":
        items = [{**good["items"][1], "key": ["public", "G", "a b"]}]
    body = {**good, "items": items}
    with pytest.raises(RemoteProtocolError) as info:
        decode_config_peer(msgpack.packb(body))
    assert words in info.value.message and info.value.code is ErrorCode.MALFORMED


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("entry", "md5"), "0" * 32, "not the md5 of the content"),
        (("entry", "md5"), "XYZ", "32 lowercase hex"),
        (("entry", "revision"), 0, "'revision' must be an integer in 1.."),
        (("entry", "revision"), 2**63, "'revision'"),
        (("entry", "content"), b"\xff", "not valid UTF-8"),
        (("entry", "type"), "exe", "not a config type"),
        (("entry", "key"), ["public", "G"], "[namespace, group, data_id]"),
        (("entry", "key"), ["public", "G", "a b"], "data_id"),
        (("entry", "change"), "edit", "'change' must be one of"),
        (("entry", "modified"), float("nan"), "'modified'"),
        (("entry", "committed"), 1, "'committed' must be true or false"),
        (("entry", "origin"), "", "'origin'"),
        (("entry", "request_id"), "r" * 65, "'request_id'"),
        (("entry", "request_id"), ["r" * 32], "'request_id'"),
        (("entry", "tags"), {"a b": "x"}, "tags key"),
        (("entry", "gray"), {"content": "x", "type": "text", "md5": content_md5("x")}, "selector"),
        (("from",), "n\x00", "'from'"),
        (("v",), 2, "'v' must be 1"),
        (("op",), "config_nope", "unknown config peer op"),
    ],
)
def test_every_field_is_checked(path: tuple[str, ...], value: Any, words: str) -> None:
    body = copy.deepcopy(VALID[0])  # a config_record
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(RemoteProtocolError, match=None) as info:
        decode_config_peer(msgpack.packb(body))
    assert words in info.value.message


def test_size_and_decoder_limits() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_config_peer(b"\xc0" * (config_peer_frame_bytes(1024) + 1), 1024)
    assert info.value.code is ErrorCode.TOO_LARGE
    big = {**VALID[0], "entry": {**VALID[0]["entry"], "content": "x" * 2048}}
    with pytest.raises(RemoteProtocolError):
        decode_config_peer(msgpack.packb(big), 1024)  # content above this node's cap


# -- fuzz ------------------------------------------------------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(),
    st.text(max_size=12), st.binary(max_size=8),
    st.sampled_from(["", ME, "public", "0" * 32, "config_record", "text"]),
)  # fmt: skip
FIELDS = ["v", "op", "from", "items", "entry", "key", "revision", "origin", "md5", "ok", "current",
          "entries", "digests", "reply", "tag", "request", "by", "code", "message", "content",
          "gray", "committed", "deleted", "labels", "clients", "request_id"]  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=6), st.sampled_from(FIELDS)), inner, max_size=4
        ),  # fmt: skip
    ),
    max_leaves=16,
)


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    msg = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        target = msg
        for _ in range(draw(st.integers(0, 4))):
            if isinstance(target, dict) and target:
                child = target[draw(st.sampled_from(sorted(target, key=str)))]
            elif isinstance(target, list) and target:
                child = target[draw(st.integers(0, len(target) - 1))]
            else:
                break
            if not isinstance(child, (dict, list)):
                break
            target = child
        if isinstance(target, dict):
            key = draw(st.one_of(st.sampled_from(sorted(target) or ["x"]), st.sampled_from(FIELDS)))
            if draw(st.booleans()) and key in target:
                del target[key]
            else:
                target[key] = draw(values)
        elif isinstance(target, list) and target:
            target[draw(st.integers(0, len(target) - 1))] = draw(values)
    return msg


def check(body: bytes) -> None:
    """Parse; anything accepted holds only what a node could have sent."""
    try:
        msg = decode_config_peer(body, 4096)
    except RemoteProtocolError as exc:
        assert isinstance(exc.code, ErrorCode) and exc.message
        return
    if isinstance(msg, ConfigBatch):
        assert 1 <= len(msg.items) <= MAX_BATCH_ITEMS
        for item in msg.items:
            assert isinstance(item, ConfigRecord | ConfigAck | ConfigCommit)
            assert item.sender == msg.sender
            check_message(item)
    else:
        check_message(msg)


def check_message(msg: Any) -> None:
    found: list[ConfigEntry] = []
    for name in ("entry", "current"):
        if isinstance(getattr(msg, name, None), ConfigEntry):
            found.append(getattr(msg, name))
    found.extend(getattr(msg, "entries", ()))
    for e in found:
        check_config_key(*e.key)
        assert e.request_id == "" or check_request_id(e.request_id) == e.request_id
        assert 1 <= e.revision < 2**63 and e.md5 == content_md5(check_content(e.content, 4096))
        if e.gray is not None:
            assert e.gray.md5 == content_md5(e.gray.content)
            assert e.gray.rule.labels or e.gray.rule.addresses
    for d in getattr(msg, "digests", ()):
        check_config_key(*d.key)
        assert 0 <= d.revision < 2**63
    if hasattr(msg, "key"):
        check_config_key(*msg.key)


@FUZZ
@given(body=st.binary(max_size=400))
def test_random_bytes(body: bytes) -> None:
    check(body)


@FUZZ
@given(value=values)
def test_random_msgpack_structures(value: Any) -> None:
    check(msgpack.packb(value))


@FUZZ
@given(msg=st.sampled_from(VALID).flatmap(mutated))
def test_mutated_valid_messages(msg: Any) -> None:
    check(msgpack.packb(msg))


@FUZZ
@given(depth=st.integers(0, 3000))
def test_nesting_at_any_depth(depth: int) -> None:
    check(b"\x91" * depth + b"\xc0")
    check(b"\x82\xa2op\xadconfig_record\xa5entry" + b"\x91" * depth + b"\xc0")
    check(b"\x82\xa2op\xacconfig_batch\xa5items" + b"\x91" * depth + b"\xc0")


# -- parse_entry against the plain reading it replaced ---------------------------------------
def _reference_parse_entry(raw: Any, cap: int, key: ConfigKey | None = None) -> ConfigEntry:
    """``parse_entry`` as it was before its fast path (every field through its checker,
    in this order): the differential test below holds the two to the same answer."""
    from meshreg.configcenter.model import (
        Change,
        GrayRelease,
        check_description,
        check_gray_rule,
        check_modified_by,
        check_tags,
        check_type,
    )
    from meshreg.wire.config_peer import _bad, _bool, _md5, _node, _revision, parse_key

    if not isinstance(raw, dict):
        raise _bad("an entry must be a map")
    entry_key = parse_key(raw.get("key"))
    if key is not None and entry_key != key:
        raise _bad(f"an entry of {entry_key} where {key} was expected")
    content = check_content(raw.get("content"), cap)
    md5 = _md5(raw.get("md5"), "md5")
    if md5 != content_md5(content):
        raise _bad(f"{entry_key}: field 'md5' is not the md5 of the content")
    modified: Any = raw.get("modified")
    if type(modified) not in (int, float) or not math.isfinite(modified) or modified < 0:
        raise _bad("field 'modified' must be a finite number of seconds >= 0")
    try:
        change_value = Change(raw.get("change"))
    except ValueError:
        raise _bad(f"field 'change' must be one of {', '.join(c.value for c in Change)}") from None
    gray_raw = raw.get("gray")
    gray = None
    if gray_raw is not None:
        if not isinstance(gray_raw, dict):
            raise _bad("field 'gray' must be a map or nil")
        gray_content = check_content(gray_raw.get("content"), cap, "gray content")
        gray_md5 = _md5(gray_raw.get("md5"), "gray md5")
        if gray_md5 != content_md5(gray_content):
            raise _bad(f"{entry_key}: field 'gray md5' is not the md5 of the gray content")
        rule = check_gray_rule(gray_raw.get("labels"), gray_raw.get("clients"), stored=True)
        gray = GrayRelease(gray_content, check_type(gray_raw.get("type")), gray_md5, rule)
    return ConfigEntry(
        key=entry_key,
        revision=_revision(raw.get("revision"), "revision"),
        origin=_node(raw.get("origin"), "origin"),
        content=content,
        type=check_type(raw.get("type")),
        md5=md5,
        modified=float(modified),
        modified_by=check_modified_by(raw.get("modified_by")),
        description=check_description(raw.get("description")),
        tags=check_tags(raw.get("tags")),
        deleted=_bool(raw.get("deleted"), "deleted"),
        change=change_value,
        gray=gray,
        committed=_bool(raw.get("committed"), "committed"),
        request_id=check_request_id(raw.get("request_id")),
    )


def _outcome(parse: Any, raw: Any) -> Any:
    from meshreg.configcenter.model import ConfigRejected

    try:
        return parse(raw, 4096)
    except (RemoteProtocolError, ConfigRejected) as exc:
        return (type(exc).__name__, exc.code, exc.message)


ENTRY_FIELDS = sorted(entry_to_wire(ENTRIES[1]))
ODD_VALUES = [None, 0, 1, -1, 2**63, 1.5, float("nan"), -0.5, "", "x" * 300, "a\x00", "text",
              "publish", "gray", b"\xff", b"x", [], {}, {"a b": "x"}, {"k": "v"}, {"k": 1},
              True, False, "0" * 32, "r" * 16, ["public", "G", "a"], ME]  # fmt: skip


@FUZZ
@given(
    base=st.sampled_from([entry_to_wire(e) for e in ENTRIES]),
    changes=st.lists(
        st.tuples(
            st.sampled_from(ENTRY_FIELDS),
            st.one_of(st.sampled_from(ODD_VALUES), values, st.just("<delete>")),
        ),
        max_size=4,
    ),
)
def test_parse_entry_answers_as_the_plain_reading(base: Any, changes: Any) -> None:
    """Whatever the entry (valid ones, and any of their fields replaced by any value or
    removed, several at once): ``parse_entry`` accepts exactly what the plain reading
    accepted, with the same version, and refuses the rest with the same error."""
    raw = msgpack.unpackb(msgpack.packb(base))
    for name, value in changes:
        if value == "<delete>":
            raw.pop(name, None)
        else:
            raw[name] = value
    from meshreg.wire.config_peer import parse_entry

    assert _outcome(parse_entry, raw) == _outcome(_reference_parse_entry, raw)


def test_batches_for_several_peers_reuse_the_packed_items_byte_for_byte() -> None:
    """A turn's records and commits go to every peer: packed for the first peer's batch,
    reused for the next (``packed``), the messages are the very bytes packed afresh -
    batches and single messages, an entry equal to another but not the same object
    packed on its own - and an ack, per peer, is never reused."""
    twin = ConfigEntry(**{f: getattr(ENTRIES[1], f) for f in ENTRIES[1].__slots__})
    for_peer = {
        "p1": [*EFFECTS[:4], SendRecord("p1", ENTRIES[0])],
        "p2": [
            SendRecord("p2", ENTRIES[1]),
            EFFECTS[3],
            SendAck("p2", KEY, 2, ME, "0" * 32, True, None),
            SendRecord("p2", twin),
        ],  # fmt: skip
        "p3": [
            SendCommit("p3", KEY, 2, ENTRIES[1].origin, ENTRIES[1].md5),
            SendCommit("p3", KEY, 3, ENTRIES[2].origin, ENTRIES[2].md5),
        ],  # fmt: skip
    }
    packed: dict[Any, Any] = {}
    for peer, effects in for_peer.items():
        assert encode_batches(ME, effects, packed) == encode_batches(ME, effects), peer
    assert len(packed) == 5  # the records of ENTRIES[0], [1] and twin, and two commits


def test_saved_records_and_committed_acks_round_trip_and_are_checked() -> None:
    """A record's ``saved`` and an ack's ``committed`` (a majority of 2: the peer marks
    the version itself) round-trip; absent they read false and the bytes are those of a
    node before them (no field); any value but true/false is refused, naming the field;
    a saved record is never packed as the same record unsaved (the per-turn cache)."""
    (saved,) = encode_replication_effect(ME, SendRecord("p", ENTRIES[1], True))
    assert decoded(saved) == ConfigRecord(ME, ENTRIES[1], True)
    (plain,) = encode_replication_effect(ME, SendRecord("p", ENTRIES[1]))
    assert decoded(plain) == ConfigRecord(ME, ENTRIES[1], False)
    assert "saved" not in msgpack.unpackb(plain[1], raw=False)
    ack = SendAck("p", KEY, 2, ENTRIES[1].origin, ENTRIES[1].md5, True, None, True)
    (acked,) = encode_replication_effect(ME, ack)
    assert decoded(acked) == ConfigAck(ME, KEY, 2, ENTRIES[1].origin, ENTRIES[1].md5, True,
                                        None, True)  # fmt: skip
    (frames,) = encode_replication_effect(ME, replace(ack, committed=False))
    assert "committed" not in msgpack.unpackb(frames[1], raw=False)
    for message, field in ((saved, "saved"), (acked, "committed")):
        msg = msgpack.unpackb(message[1], raw=False)
        for bad in (1, "yes", None):
            msg[field] = bad
            with pytest.raises(RemoteProtocolError, match=f"'{field}' must be true or false"):
                decode_config_peer(msgpack.packb(msg))
    packed: dict[Any, Any] = {}
    effects = [SendRecord("p", ENTRIES[1], True), SendRecord("p", ENTRIES[1])]
    assert encode_batches(ME, effects, packed) == encode_batches(ME, effects)


def test_a_peer_version_whose_gray_rule_names_a_host_port_is_still_accepted() -> None:
    """A version written by a node from before hosts-only rules replicates as it is: a
    version the cluster holds is never refused (a client's new rule is, ``check_gray_rule``)."""
    from meshreg.wire.config_peer import parse_entry

    raw = entry_to_wire(ENTRIES[1])
    raw["gray"] = {"content": "g", "md5": content_md5("g"), "type": "text", "labels": {},
                   "clients": ["127.0.0.1:1"]}  # fmt: skip
    entry = parse_entry(raw, 1 << 20)
    assert entry.gray is not None and entry.gray.rule.addresses == frozenset({"127.0.0.1:1"})


def test_a_not_found_reply_of_a_delete_carries_its_revision_in_a_field() -> None:
    """review38 F1: ``error.revision`` (a config_get of a deleted data id), decoded into
    the client's NotFoundError; a reply whose revision is not one is refused."""
    from meshreg.client.messages import decode_reply_frames
    from meshreg.errors import NotFoundError, server_error

    body = encode_error(4, ErrorCode.NOT_FOUND, "x does not exist", revision=7)
    assert msgpack.unpackb(body)["error"]["revision"] == 7
    reply = decode_reply_frames([b"", body])
    exc = server_error(reply.code, reply.message, "n", reply.unwritten, reply.revision)
    assert isinstance(exc, NotFoundError) and exc.revision == 7
    assert decode_reply_frames([b"", encode_error(4, ErrorCode.NOT_FOUND, "x")]).revision is None
    for bad in (0, -1, True, "7", 2**63):
        err = {"code": int(ErrorCode.NOT_FOUND), "name": "NOT_FOUND", "message": "m",
               "revision": bad}  # fmt: skip
        with pytest.raises(RemoteProtocolError, match="'revision'"):
            decode_reply_frames([b"", msgpack.packb({"v": 1, "id": 4, "ok": False, "error": err})])
