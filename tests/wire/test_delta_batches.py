"""Batched replication (wire/batching, the ``deltas`` message of wire/peer): the batcher's
flush rules with a fake clock, exact sizes, and a decoder that checks every delta of a
batch as it checks a single one, keeping the good ones."""

from __future__ import annotations

import copy
from typing import Any

import msgpack
import pytest
from helpers import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st
from test_peer_validation import BAD_PAYLOAD_FIELDS, with_value

from meshreg.core.effects import InstanceView
from meshreg.errors import ErrorCode, RemoteProtocolError
from meshreg.model import InstanceId, ServiceKey
from meshreg.transport.sockets import REPLICATION_FRAME_BYTES
from meshreg.wire import limits
from meshreg.wire.batching import BATCH_BYTES, BATCH_DELAY, BATCH_DELTAS, DeltaBatcher
from meshreg.wire.peer import (
    MAX_BATCH_DELTAS,
    DeltaBatch,
    ReplicatedDelta,
    ServicePayload,
    decode_replication,
    encode_delta,
    payload_to_wire,
)

STAMP = 1_700_000_000_000_000 << 10


def delta(seq: int, instances: int = 1, meta: int = 0, node: str = "n1", epoch: int = 7) -> Any:
    views = tuple(
        InstanceView(
            f"10.0.{i // 250}.{i % 250 + 1}",
            8080,
            "DEFAULT",
            1.0,
            True,
            True,
            {"k": "v" * meta} if meta else {},
            STAMP + seq,
            STAMP + seq,
            0,
        )
        for i in range(instances)
    )
    removals = ((InstanceId("10.1.0.1", 80, "DEFAULT"), STAMP, STAMP),) if seq % 3 == 0 else ()
    key = ServiceKey("public", "DEFAULT_GROUP", f"svc-{seq % 5}")
    return ReplicatedDelta(node, epoch, seq, ServicePayload(key, views, removals, None))


def decoded(messages: list[list[bytes]]) -> list[ReplicatedDelta]:
    out: list[ReplicatedDelta] = []
    for frames in messages:
        msg = decode_replication(frames)
        if type(msg) is DeltaBatch:
            assert not msg.rejected
            out.extend(msg.deltas)
        else:
            assert type(msg) is ReplicatedDelta
            out.append(msg)
    return out


def run(batcher: DeltaBatcher, deltas: list[Any], times: list[float]) -> list[list[bytes]]:
    out: list[list[bytes]] = []
    for d, now in zip(deltas, times, strict=True):
        out.extend(batcher.add(d, now))
    last = batcher.flush()
    if last is not None:
        out.append(last)
    return out


# -- the batcher ------------------------------------------------------------------------
def test_one_delta_alone_is_the_plain_delta_message_byte_for_byte() -> None:
    b = DeltaBatcher()
    d = delta(1, instances=3, meta=10)
    assert b.add(d, 0.0) == []
    assert b.flush() == encode_delta(d)  # what every node (and an older one) reads
    assert b.flush() is None and len(b) == 0


def test_a_turns_deltas_share_one_message_in_order() -> None:
    b = DeltaBatcher()
    deltas = [delta(s) for s in range(10, 20)]
    for d in deltas:
        assert b.add(d, 0.0) == []
    held = b.body_bytes()
    frames = b.flush()
    assert frames is not None and frames[0] == b"deltas" and len(frames[1]) == held
    msg = decode_replication(frames)
    assert type(msg) is DeltaBatch and msg.deltas == tuple(deltas) and msg.rejected == ()
    assert (b.messages, b.deltas) == (1, 10)


def test_full_count_sends_at_once() -> None:
    b = DeltaBatcher(max_deltas=4)
    out = [b.add(delta(s), 0.0) for s in range(1, 9)]
    assert [len(o) for o in out] == [0, 0, 0, 1, 0, 0, 0, 1]
    assert [d.seq for d in decoded([o[0] for o in out if o])] == list(range(1, 9))


def test_the_next_delta_that_would_pass_max_bytes_goes_into_the_next_message() -> None:
    one = len(encode_delta(delta(1, instances=20))[1])
    b = DeltaBatcher(max_bytes=int(one * 2.5))
    out = run(b, [delta(s, instances=20) for s in range(1, 8)], [0.0] * 7)
    assert all(len(f[1]) <= b.max_bytes for f in out)
    assert [d.seq for d in decoded(out)] == list(range(1, 8))
    assert len(out) == 4  # 2 + 2 + 2 + 1


def test_a_delta_larger_than_max_bytes_goes_alone_at_once() -> None:
    b = DeltaBatcher(max_bytes=2000)
    assert b.add(delta(1), 0.0) == []
    out = b.add(delta(2, instances=50), 0.0)  # ~6 KB
    assert [m[0] for m in out] == [b"delta", b"delta"] and len(b) == 0
    assert [d.seq for d in decoded(out)] == [1, 2]


def test_a_seq_that_does_not_follow_or_another_epoch_starts_a_new_message() -> None:
    b = DeltaBatcher()
    b.add(delta(1), 0.0)
    b.add(delta(2), 0.0)
    gap = b.add(delta(4), 0.0)  # the runtime never skips; if it did, the seqs stay right
    assert len(gap) == 1 and [d.seq for d in decoded(gap)] == [1, 2]
    restarted = b.add(delta(5, epoch=8), 0.0)
    assert [d.seq for d in decoded(restarted)] == [4]
    last = b.flush()
    assert last is not None
    assert [(d.epoch, d.seq) for d in decoded([last])] == [(8, 5)]


def test_max_delay_bounds_how_long_the_first_delta_waits() -> None:
    b = DeltaBatcher(max_delay=0.002)
    assert b.add(delta(1), 10.0) == [] and b.due == pytest.approx(10.002)
    assert b.add(delta(2), 10.0015) == []
    out = b.add(delta(3), 10.002)  # due: the batch goes with this one
    assert [d.seq for d in decoded(out)] == [1, 2, 3] and b.due == float("inf")
    assert b.add(delta(4), 10.003) == [] and b.due == pytest.approx(10.005)


def test_a_write_outside_a_burst_sends_its_batch_at_once() -> None:
    b = DeltaBatcher(max_delay=0.001)
    assert not b.must_go(10.0, False) and not b.must_go(10.0, True)  # nothing held
    b.add(delta(1), 10.0)
    assert b.must_go(10.0, False)  # nothing more waits: out before its reply
    assert b.must_go(10.0, True)  # the first change in a while: out although more wait
    b.flush()
    b.add(delta(2), 10.0015)  # 1.5 ms after the one before: not a burst
    assert b.must_go(10.0015, True)


def test_a_burst_holds_its_batch_while_more_waits_until_its_delay_has_passed() -> None:
    b = DeltaBatcher(max_delay=0.001)
    b.add(delta(1), 10.0)
    assert b.flush() is not None
    b.add(delta(2), 10.0003)  # 0.3 ms after the one before: a burst
    b.add(delta(3), 10.0006)
    assert not b.must_go(10.0006, True) and not b.must_go(10.00129, True)
    assert b.must_go(10.0006, False)  # nothing more waits: it goes
    assert b.must_go(10.0013, True)  # due: the batch's first delta waited max_delay
    last = b.flush()
    assert last is not None and [d.seq for d in decoded([last])] == [2, 3]
    assert not b.must_go(10.002, True) and not b.must_go(10.002, False)


def test_the_default_delay_leaves_room_in_the_propagation_target() -> None:
    assert BATCH_DELAY <= 0.001  # of the 5 ms p99 target from a reply to every push


def test_the_defaults_stay_far_under_what_a_receiver_accepts() -> None:
    assert BATCH_DELTAS <= MAX_BATCH_DELTAS
    assert BATCH_BYTES * 4 <= limits.MAX_PEER_BODY_BYTES < REPLICATION_FRAME_BYTES
    with pytest.raises(ValueError):
        DeltaBatcher(max_deltas=MAX_BATCH_DELTAS + 1)
    with pytest.raises(ValueError):
        DeltaBatcher(max_bytes=limits.MAX_PEER_BODY_BYTES + 1)


@fuzz_settings(150)
@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 300), st.floats(0, 0.003)), max_size=60),
    st.integers(1, 20),
    st.integers(300, 20_000),
)
def test_any_sequence_arrives_whole_in_order_within_the_bounds(
    shapes: list[tuple[int, int, float]], max_deltas: int, max_bytes: int
) -> None:
    b = DeltaBatcher(max_deltas=max_deltas, max_bytes=max_bytes, max_delay=0.002)
    deltas = [delta(100 + i, n, meta) for i, (n, meta, _) in enumerate(shapes)]
    times, now = [], 0.0
    for _, _, dt in shapes:
        now += dt
        times.append(now)
    out = run(b, deltas, times)
    assert decoded(out) == deltas  # nothing lost, duplicated or reordered; seqs kept
    for frames in out:
        n = len(msgpack.unpackb(frames[1])["deltas"]) if frames[0] == b"deltas" else 1
        assert n <= max_deltas
        if n > 1:
            assert len(frames[1]) <= max_bytes  # only a lone delta may be larger
    assert b.deltas == len(deltas) and b.messages == len(out)


# -- the decoder ---------------------------------------------------------------------------
def batch_frames(payloads: list[Any], seq: int = 1, **extra: Any) -> list[bytes]:
    body = {"v": 1, "node": "n2", "epoch": 3, "seq": seq, "deltas": payloads, **extra}
    return [b"deltas", msgpack.packb(body)]


def good(seq: int) -> dict[str, Any]:
    return payload_to_wire(delta(seq).payload)


@pytest.mark.parametrize(("path", "value", "names"), BAD_PAYLOAD_FIELDS)
def test_a_bad_delta_is_rejected_as_alone_and_the_others_are_kept(
    path: tuple[Any, ...], value: Any, names: str
) -> None:
    base = payload_to_wire(
        ServicePayload(
            ServiceKey("public", "DEFAULT_GROUP", "orders"),
            delta(1, meta=3).payload.upserts,
            ((InstanceId("10.0.0.2", 8080, "DEFAULT"), STAMP, 0),),
            (0.5, STAMP, {"x": "y"}),
        )
    )
    bad = with_value(base, path, value)
    with pytest.raises(RemoteProtocolError) as alone:  # the single delta's verdict
        decode_replication([b"delta", msgpack.packb({"v": 1, "node": "n2", "epoch": 3,
                                                     "seq": 1, **bad})])  # fmt: skip
    msg = decode_replication(batch_frames([base, bad, copy.deepcopy(base)], seq=10))
    assert type(msg) is DeltaBatch
    assert [d.seq for d in msg.deltas] == [10, 12]
    assert [s for s, _ in msg.rejected] == [11]
    assert msg.rejected[0][1] == alone.value.message and names in msg.rejected[0][1]


@pytest.mark.parametrize(
    ("fields", "code", "says"),
    [
        ({"deltas": []}, ErrorCode.INVALID_ARGUMENT, "non-empty"),
        ({"deltas": {"a": 1}}, ErrorCode.INVALID_ARGUMENT, "list"),
        ({"seq": -1}, ErrorCode.INVALID_ARGUMENT, "seq"),
        ({"seq": 2**64 - 1}, ErrorCode.INVALID_ARGUMENT, "seq"),  # the last seq would overflow
        ({"node": "n\x00"}, ErrorCode.INVALID_ARGUMENT, "control"),
        ({"epoch": "x"}, ErrorCode.INVALID_ARGUMENT, "epoch"),
    ],
)
def test_a_bad_envelope_rejects_the_whole_message(
    fields: dict[str, Any], code: ErrorCode, says: str
) -> None:
    body = {"v": 1, "node": "n2", "epoch": 3, "seq": 1, "deltas": [good(1), good(2)], **fields}
    with pytest.raises(RemoteProtocolError) as exc:
        decode_replication([b"deltas", msgpack.packb(body)])
    assert exc.value.code == code and says in exc.value.message


def test_the_batch_size_is_bounded_on_decode() -> None:
    tiny = {"namespace": "public", "group": "g", "service": "s", "upsert": [], "remove": []}
    ok = decode_replication(batch_frames([tiny] * MAX_BATCH_DELTAS))
    assert type(ok) is DeltaBatch and len(ok.deltas) == MAX_BATCH_DELTAS
    with pytest.raises(RemoteProtocolError) as exc:
        decode_replication(batch_frames([tiny] * (MAX_BATCH_DELTAS + 1)))
    assert exc.value.code is ErrorCode.TOO_LARGE and str(MAX_BATCH_DELTAS) in exc.value.message
    big = [b"deltas", b"\x00" * (limits.MAX_PEER_BODY_BYTES + 1)]  # checked before decoding
    assert pytest.raises(RemoteProtocolError, decode_replication, big).value.code is (
        ErrorCode.TOO_LARGE
    )


@fuzz_settings(200)
@given(st.lists(st.one_of(st.just("good"), st.sampled_from(range(len(BAD_PAYLOAD_FIELDS)))),
                min_size=1, max_size=30))  # fmt: skip
def test_good_deltas_survive_any_mix_of_bad_ones(kinds: list[Any]) -> None:
    payloads, want_good, want_bad = [], [], []
    for i, kind in enumerate(kinds):
        if kind == "good":
            payloads.append(good(i))
            want_good.append(500 + i)
        else:
            path, value, _ = BAD_PAYLOAD_FIELDS[kind]
            base = payload_to_wire(delta(3, meta=2).payload)  # has a removal
            base["settings"] = [0.5, STAMP, {}]
            payloads.append(with_value(base, path, value))
            want_bad.append(500 + i)
    msg = decode_replication(batch_frames(payloads, seq=500))
    assert type(msg) is DeltaBatch
    assert [d.seq for d in msg.deltas] == want_good
    assert [s for s, _ in msg.rejected] == want_bad
