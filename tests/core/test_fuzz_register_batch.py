"""Fuzzing ``register_batch`` entry by entry: a batch of valid and hostile entries must
leave exactly the state the same entries leave as single ``register`` requests (the
accepted ones applied in order, the refused ones nothing), and answer each entry with
the code its single ``register`` gets.  One bad entry never rejects the others."""

from __future__ import annotations

from typing import Any

import msgpack
from answers import served
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_handler import FUZZ, KNOWN, NOW, populated_node, state, still_works, weird_values

from meshreg.errors import ErrorCode
from meshreg.wire import limits
from meshreg.wire.messages import RequestRejected, parse_request
from meshreg.wire.replies import decode_reply, encode_ok

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
    node, twin = populated_node(), populated_node()
    body = {"v": 1, "id": 77, "op": "register_batch", "namespace": namespace, "instances": batch}
    try:
        req = parse_request(msgpack.packb(body))
    except RequestRejected as exc:  # only the body's decoding rejects this batch whole:
        # a value beyond the decoder's limits, or a map key that is not a string
        assert exc.code in (ErrorCode.TOO_LARGE, ErrorCode.MALFORMED), exc
        return
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
    assert state(node) == state(twin)
    node.take_effects()
    still_works(node)


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
