"""Fuzzing ``register_batch`` entry by entry: a batch of valid and hostile entries must
leave exactly the state the same entries leave as single ``register`` requests (the
accepted ones applied in order, the refused ones nothing), and answer each entry with
the code its single ``register`` gets.  One bad entry never rejects the others.  And the
owner's reply to a relayed part (results, written frame): only RemoteProtocolError escapes.

The batch's changes are coalesced per service (core/store, "Batches"): only the
revisions differ from the entries one by one (one new revision per service changed), and
what it publishes must bring a watcher (the client's cache, fed the encoded
notifications) and a peer (merging the deltas) to the node's final state."""

from __future__ import annotations

from typing import Any

import msgpack
from answers import served
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_handler import FUZZ, KNOWN, NOW, populated_node, state, still_works, weird_values

from meshreg.client.cache import Outcome, ServiceView
from meshreg.core.effects import ServiceChanged
from meshreg.errors import ErrorCode, RemoteProtocolError
from meshreg.model import ServiceKey
from meshreg.wire import limits
from meshreg.wire.messages import RequestRejected, parse_request
from meshreg.wire.notifications import decode_notification, encode_change
from meshreg.wire.peer import decode_batch_reply, decode_written_batch, encode_written_batch
from meshreg.wire.replies import decode_reply, encode_ok
from meshreg.wire.result_maps import to_wire

ENTRY_FIELDS = ["group", "service", "ip", "port", "cluster", "weight", "enabled", "metadata"]
ENTRY_FIELDS += ["session", "namespace"]


@st.composite
def entries(draw: st.DrawFn) -> Any:
    """A valid entry, a valid entry with one field hostile or missing, or anything."""
    key = draw(st.sampled_from(KNOWN))
    entry: dict[str, Any] = {
        "group": key.group,
        "service": key.service,
        "ip": draw(st.sampled_from(["10.0.0.1", "10.0.0.7", "h.example"])),
        "port": draw(st.sampled_from([8080, 8081, 9000])),
        "metadata": {"zone": "a"},
    }
    kind = draw(st.sampled_from(["valid", "edited", "edited", "anything"]))
    if kind == "anything":
        return draw(weird_values)
    if kind == "edited":
        field = draw(st.sampled_from(ENTRY_FIELDS))
        if draw(st.booleans()) and field in entry:
            del entry[field]
        else:
            entry[field] = draw(weird_values)
    return entry


def single(entry: Any, namespace: str, req_id: int) -> tuple[Any, int | None]:
    """The oracle: the entry as one ``register`` (None: it would be accepted), and the
    code a batch must give it."""
    if type(entry) is not dict:
        return None, int(ErrorCode.INVALID_ARGUMENT)
    own = entry.get("namespace")
    if own is not None and own != namespace:
        return None, int(ErrorCode.INVALID_ARGUMENT)
    body = {**entry, "v": 1, "id": req_id, "op": "register", "namespace": namespace}
    try:
        return parse_request(msgpack.packb(body)), None
    except RequestRejected as exc:
        return None, int(exc.code)


@FUZZ
@given(
    batch=st.lists(entries(), min_size=1, max_size=8),
    namespace=st.sampled_from(["public", "dev"]),
)
def test_a_batch_leaves_what_its_entries_leave_one_by_one(batch: list[Any], namespace: str) -> None:
    node, twin, peer = populated_node(), populated_node(), populated_node()
    body = {"v": 1, "id": 77, "op": "register_batch", "namespace": namespace, "instances": batch}
    try:
        req = parse_request(msgpack.packb(body))
    except RequestRejected as exc:  # only the body's decoding rejects this batch whole:
        # a value beyond the decoder's limits, or a map key that is not a string
        assert exc.code in (ErrorCode.TOO_LARGE, ErrorCode.MALFORMED), exc
        return
    keys = set(KNOWN) | {e.key for e in req.entries if hasattr(e, "key")}
    watchers = {k: watcher(node, k) for k in keys}
    revisions = {k: node.store.get(k) and node.store.get(k).revision for k in keys}  # type: ignore[union-attr]
    revision = node.store.revision
    result = served(node, req, NOW)
    reply = decode_reply(encode_ok(77, result))
    results = reply["result"]["results"]
    assert len(results) == len(batch)
    for i, entry in enumerate(batch):
        one, code = single(entry, namespace, 77)
        if one is not None:
            try:
                served(twin, one, NOW)
            except RequestRejected as exc:  # refused by the core (a quota, a session)
                code = int(exc.code)
        if code is None:
            assert results[i] is None, (i, entry, results[i])
        else:
            assert results[i] is not None and results[i][0] == code, (i, entry, results[i])
            assert f"instances[{i}]" in results[i][1] or code != ErrorCode.INVALID_ARGUMENT
    assert table(node) == table(twin)
    changes = [e for e in node.take_effects() if type(e) is ServiceChanged]
    singles = {e.key for e in twin.take_effects() if type(e) is ServiceChanged}
    # coalesced: one change per service the entries changed, from its revision before
    assert sorted(c.key for c in changes) == sorted(singles)
    assert node.store.revision == revision + len(changes)
    for change in changes:
        assert change.base == (revisions[change.key] or 0) < change.revision
        assert node.store.revision_of(change.key) == change.revision
        # a watcher fed the notification lands on the node's list (a new service: a gap,
        # then its pull, as for a single register of it)
        view = watchers[change.key]
        outcome = view.apply_notification(decode_notification(encode_change(change, 99)))
        if revisions[change.key] is not None:
            assert outcome is Outcome.APPLIED, change
        elif outcome is Outcome.GAP:
            view.apply_snapshot(to_wire(node.registry.instances_result(change.key, False)))
        # a peer merging the delta holds what the node holds
        peer.store.merge(change.key, change.upserted, (), NOW)
    for key, view in watchers.items():
        assert listing(view) == listing(watcher(node, key)), key
    assert records(peer) == records(node)
    still_works(node)


def watcher(node: Any, key: ServiceKey) -> ServiceView:
    """A client's cache of ``key``, loaded from the node's list now."""
    view = ServiceView(key)
    view.apply_snapshot(to_wire(node.registry.instances_result(key, False)))
    return view


def listing(view: ServiceView) -> list[Any]:
    return [(i.id, i.weight, i.enabled, i.healthy, i.metadata) for i in view.listing()]


def table(node: Any) -> bytes:
    """``state`` without the revisions (a batch makes one per service, not one per entry)."""
    revision, services, views = msgpack.unpackb(state(node))
    for service in services:
        service[1] = None
    for view in views:
        view["revision"] = None
    return msgpack.packb([services, views])


def records(node: Any) -> list[Any]:
    """Every record with its replicated fields and stamps."""
    return sorted(
        (
            list(key),
            list(r.id),
            r.weight,
            r.enabled,
            r.healthy,
            sorted(r.metadata.items()),
            r.version,
            r.alive,
            r.down,
            r.session,
        )  # fmt: skip
        for key, svc in node.store.services.items()
        for r in svc.instances.values()
    )


def test_the_envelope_is_checked_whole_and_a_rejected_batch_changes_nothing() -> None:
    ok = {"service": "orders", "ip": "10.0.0.9", "port": 1}
    for instances, code in [
        (None, ErrorCode.INVALID_ARGUMENT),
        ([], ErrorCode.INVALID_ARGUMENT),
        ({"a": ok}, ErrorCode.INVALID_ARGUMENT),
        ([ok] * (limits.MAX_BATCH_REGISTER + 1), ErrorCode.TOO_LARGE),
    ]:
        node = populated_node()
        before = state(node)
        body = {"v": 1, "id": 5, "op": "register_batch", "instances": instances}
        try:
            parse_request(msgpack.packb(body))
        except RequestRejected as exc:
            assert exc.code is code and exc.req_id == 5 and "instances" in exc.message
        else:
            raise AssertionError(f"accepted {instances!r:.60}")
        assert state(node) == before
    body = {"v": 1, "id": 5, "op": "register_batch", "namespace": "bad ns", "instances": [ok]}
    try:
        parse_request(msgpack.packb(body))
    except RequestRejected as exc:
        assert exc.code is ErrorCode.INVALID_ARGUMENT and "namespace" in exc.message


# -- the owner's reply to a relayed part (peer plane): decoded and checked, never trusted --
replies = st.one_of(
    weird_values,
    st.builds(
        lambda results, ok: {"v": 1, "id": 1, "ok": ok, "result": {"results": results}},
        st.lists(st.one_of(st.none(), weird_values), max_size=4),
        st.one_of(st.just(True), weird_values),
    ),
)


@FUZZ
@given(reply=replies, count=st.integers(0, 4))
def test_an_owners_batch_reply_is_checked(reply: Any, count: int) -> None:
    try:
        results = decode_batch_reply(msgpack.packb(reply), count)
    except RemoteProtocolError:
        return
    assert len(results) == count
    for r in results:
        assert r is None or (type(r[0]) is int and type(r[1]) is str)


@FUZZ
@given(frame=st.one_of(weird_values, st.lists(weird_values, max_size=3)))
def test_an_owners_written_frame_is_checked(frame: Any) -> None:
    try:
        payloads = decode_written_batch(msgpack.packb(frame))
    except RemoteProtocolError:
        return
    assert sum(len(p.upserts) + len(p.removals) for p in payloads) <= limits.MAX_BATCH_REGISTER


def test_a_well_formed_owner_reply_and_written_frame_round_trip() -> None:
    node = populated_node()
    entries = [
        {"service": "orders", "ip": "10.0.0.8", "port": 1},
        {"service": "pay", "ip": "h", "port": 0},
        {"service": "pay", "ip": "10.0.0.9", "port": 2},
    ]
    body = {"v": 1, "id": 3, "op": "register_batch", "instances": entries}
    req = parse_request(msgpack.packb(body))
    result = served(node, req, NOW)
    reply = msgpack.unpackb(encode_ok(3, result))
    assert decode_batch_reply(msgpack.packb(reply), 3) == list(result.results)
    payloads = decode_written_batch(encode_written_batch(node.written_batch(req)))
    assert sorted((p.key.service, [v.ip for v in p.upserts]) for p in payloads) == [
        ("orders", ["10.0.0.8"]), ("pay", ["10.0.0.9"])]  # fmt: skip
    try:
        decode_batch_reply(msgpack.packb(reply), 2)  # not the count the part had
    except RemoteProtocolError:
        pass
    else:
        raise AssertionError("a reply with another count was accepted")
