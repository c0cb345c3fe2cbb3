"""The planned config ops' request parsing (meshreg/wire/config_messages.py): examples,
and fuzzing (bounded, derandomized): only RequestRejected escapes, with a code and a
message, and whatever is accepted is within the core's rules."""

from __future__ import annotations

import copy
import re
from typing import Any

import msgpack
import pytest
from helpers import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import (
    CONFIG_TYPES,
    ConfigKey,
    ConfigRejected,
    check_config_key,
    check_request_id,
)
from meshreg.errors import ErrorCode
from meshreg.wire.config_messages import (
    CONFIG_OPS,
    CONFIG_WRITE_OPS,
    ConfigHistory,
    DeleteConfig,
    GetConfig,
    ListConfigs,
    ListenConfig,
    PublishConfig,
    PublishGray,
    RollbackConfig,
    as_config_write,
    parse_config_message,
    parse_config_request,
)
from meshreg.wire.messages import CLIENT_OPS, RequestRejected

FUZZ = fuzz_settings(300)


def body(op: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "id": 7, "op": op, **fields}


VALID = [
    body("config_publish", data_id="app.yaml", content="a: 1", type="yaml", if_revision=0,
         desc="d", tags={"team": "x"}, request_id="0123456789abcdef0123456789abcdef"),
    body("config_get", data_id="app.yaml", revision=3, min_revision=2, labels={"env": "c"}),
    body("config_delete", data_id="app.yaml", if_revision=4, request_id="550e8400-e29b-41d4"),
    body("config_list", namespace="public", group="g", pattern="app*", page_size=10),
    body("config_history", data_id="app.yaml", page_size=5, cursor=9),
    body("config_rollback", data_id="app.yaml", revision=2),
    body("config_listen", data_id="app.yaml", revision=3, md5="270f9e65a80226eccd82c99cdd0dd2fb"),
    body("config_unlisten", data_id="app.yaml"),
    body("config_gray", data_id="app.yaml", content="b", labels={"env": "canary"},
         clients=["10.0.0.1"]),
    body("config_promote", data_id="app.yaml"),
    body("config_gray_drop", data_id="app.yaml", if_revision=5),
    body("config_force_ready", data_id="ignored"),  # node-wide: no names; extra keys ignored
]  # fmt: skip


def test_every_op_has_a_valid_example_and_every_one_is_a_client_op() -> None:
    assert sorted(m["op"] for m in VALID) == sorted(CONFIG_OPS)
    assert set(CONFIG_OPS) <= set(CLIENT_OPS)  # served by runtime/config_plane
    for m in VALID:
        req = parse_config_message(m)
        assert req.op == m["op"] and req.req_id == 7


def test_fields_are_typed_and_defaulted() -> None:
    p = parse_config_message(VALID[0])
    assert isinstance(p, PublishConfig)
    assert (p.key, p.content, p.type, p.if_revision, p.desc, p.tags) == (
        ConfigKey("public", "DEFAULT_GROUP", "app.yaml"), "a: 1", "yaml", 0, "d",
        (("team", "x"),),
    )  # fmt: skip
    g = parse_config_message(body("config_get", data_id="x", namespace="ns", group="g"))
    assert isinstance(g, GetConfig)
    assert (g.key, g.revision, g.min_revision, g.labels) == (ConfigKey("ns", "g", "x"), None, 0,
                                                             ())  # fmt: skip
    lst = parse_config_message(body("config_list"))
    assert isinstance(lst, ListConfigs)
    assert (lst.namespace, lst.group, lst.pattern, lst.cursor) == ("public", None, "*", None)
    h = parse_config_message(body("config_history", data_id="x"))
    assert isinstance(h, ConfigHistory) and h.cursor is None
    # content may come as UTF-8 bytes too
    b = parse_config_message(body("config_publish", data_id="x", content="é".encode()))
    assert isinstance(b, PublishConfig) and b.content == "é"
    assert b.type is None  # absent: the type the data id has, decided by its owner


@pytest.mark.parametrize(
    ("msg", "code", "words"),
    [
        (body("config_publish", data_id="x"), ErrorCode.INVALID_ARGUMENT, "'content' is required"),
        (body("config_publish", data_id="x", content=b"\xff"), ErrorCode.INVALID_ARGUMENT,
         "UTF-8"),
        (body("config_publish", data_id="x", content="x", type="ini"),
         ErrorCode.INVALID_ARGUMENT, "'type'"),
        (body("config_publish", data_id="x", content="x", type=3),
         ErrorCode.INVALID_ARGUMENT, "field 'type' must be a string, one of text"),
        (body("config_publish", data_id="x", content="x", type=3),
         ErrorCode.INVALID_ARGUMENT, "(got int 3)"),
        (body("config_publish", data_id="a b", content="x"), ErrorCode.INVALID_ARGUMENT,
         "'data_id'"),
        (body("config_publish", content="x"), ErrorCode.INVALID_ARGUMENT, "'data_id'"),
        (body("config_publish", data_id="x", content="x", if_revision=-1),
         ErrorCode.INVALID_ARGUMENT, "'if_revision'"),
        (body("config_publish", data_id="x", content="x" * 2000), ErrorCode.TOO_LARGE, "1024"),
        (body("config_publish", data_id="x", content="x", revision_floor=-1),
         ErrorCode.INVALID_ARGUMENT, "field 'revision_floor' must be an integer in 0.."),
        (body("config_publish", data_id="x", content="x", revision_floor=2**62 + 1),
         ErrorCode.INVALID_ARGUMENT, "'revision_floor'"),
        (body("config_publish", data_id="x", content="x", revision_floor="7"),
         ErrorCode.INVALID_ARGUMENT, "'revision_floor'"),
        (body("config_publish", data_id="x", content="x", revision_floor=7.0),
         ErrorCode.INVALID_ARGUMENT, "'revision_floor'"),
        (body("config_delete", data_id="x", revision_floor=True),
         ErrorCode.INVALID_ARGUMENT, "'revision_floor'"),
        (body("config_gray", data_id="x", content="x", labels={"a": "b"}, revision_floor=-1),
         ErrorCode.INVALID_ARGUMENT, "'revision_floor'"),
        (body("config_promote", data_id="x", revision_floor="3"),
         ErrorCode.INVALID_ARGUMENT, "'revision_floor'"),
        (body("config_gray_drop", data_id="x", revision_floor=1.5),
         ErrorCode.INVALID_ARGUMENT, "'revision_floor'"),
        (body("config_gray", data_id="x", content="x"), ErrorCode.INVALID_ARGUMENT, "selector"),
        (body("config_rollback", data_id="x"), ErrorCode.INVALID_ARGUMENT, "'revision'"),
        (body("config_get", data_id="x", revision=0), ErrorCode.INVALID_ARGUMENT, "'revision'"),
        (body("config_list", pattern="a/b"), ErrorCode.INVALID_ARGUMENT, "'pattern'"),
        (body("config_list", page_size=10**6), ErrorCode.INVALID_ARGUMENT, "'page_size'"),
        (body("config_get", data_id="x", labels={"a": 1}), ErrorCode.INVALID_ARGUMENT, "labels"),
        (body("config_publish", data_id="x", content="x", request_id="short"),
         ErrorCode.INVALID_ARGUMENT, "'request_id' must be a string of 16..64"),
        (body("config_delete", data_id="x", request_id=12345678901234567890),
         ErrorCode.INVALID_ARGUMENT, "'request_id'"),
        (body("config_promote", data_id="x", request_id="0123456789abcdef/"),
         ErrorCode.INVALID_ARGUMENT, "'request_id'"),
        (body("config_listen", data_id="x", revision=1, md5="270F9E65A80226ECCD82C99CDD0DD2FB"),
         ErrorCode.INVALID_ARGUMENT, "field 'md5' must be the md5"),
        (body("config_listen", data_id="x", revision=1, md5="abc"),
         ErrorCode.INVALID_ARGUMENT, "'md5'"),
        (body("config_listen", data_id="x", revision=1, md5=b"0" * 32),
         ErrorCode.INVALID_ARGUMENT, "'md5'"),
        (body("config_listen", data_id="x", revision=1, md5="0" * 32 + "\n"),
         ErrorCode.INVALID_ARGUMENT, "'md5'"),
        (body("config_nope"), ErrorCode.UNKNOWN_OP, "config_publish"),
        (body("register"), ErrorCode.UNKNOWN_OP, "unknown config op"),
        ({"v": 2, "id": 1, "op": "config_get"}, ErrorCode.UNSUPPORTED_VERSION, "v=1"),
    ],
)  # fmt: skip
def test_bad_requests_name_the_field(msg: dict[str, Any], code: ErrorCode, words: str) -> None:
    with pytest.raises(RequestRejected) as info:
        parse_config_message(msg, max_content_bytes=1024)
    assert info.value.code is code and words in info.value.message, info.value.message


def test_listen_md5_is_optional_and_kept() -> None:
    md5 = "270f9e65a80226eccd82c99cdd0dd2fb"
    for given_md5, kept in ((None, None), ("", ""), (md5, md5)):
        req = parse_config_message(body("config_listen", data_id="x", revision=2, md5=given_md5))
        assert isinstance(req, ListenConfig) and req.md5 == kept and req.revision == 2


def test_body_size_and_decoder_limits() -> None:
    big = msgpack.packb(body("config_publish", data_id="x", content="x" * 5000))
    with pytest.raises(RequestRejected) as info:
        parse_config_request(big, max_content_bytes=1024)
    assert info.value.code is ErrorCode.TOO_LARGE
    ok = parse_config_request(big, max_content_bytes=8192)
    assert isinstance(ok, PublishConfig) and len(ok.content) == 5000
    with pytest.raises(RequestRejected) as info:
        parse_config_request(b"\xc1", max_content_bytes=1024)
    assert info.value.code is ErrorCode.MALFORMED


def test_writes_map_onto_the_replication_commands() -> None:
    store = ConfigStore("n1")
    for m in VALID:
        req = parse_config_message(m)
        if req.op in CONFIG_WRITE_OPS:
            w = as_config_write(req, "reply-to", by="alice")
            assert w.request == "reply-to" and w.args["by"] == "alice"
    pub = as_config_write(parse_config_message(VALID[0]), None)
    assert (pub.op, pub.if_revision, pub.args["content"]) == ("publish", 0, "a: 1")
    assert pub.request_id == "0123456789abcdef0123456789abcdef"  # goes with the write
    assert as_config_write(parse_config_message(VALID[2]), None).request_id  # a delete
    assert as_config_write(parse_config_message(VALID[9]), None).request_id == ""  # none given
    gray = parse_config_message(VALID[8])
    assert isinstance(gray, PublishGray)
    w = as_config_write(gray, None)
    store.publish(w.key, "main", now=1.0)
    store.publish_gray(w.key, w.args["content"], labels=w.args["labels"],
                       clients=w.args["clients"], now=2.0)  # fmt: skip
    assert store.resolve(w.key, {"env": "canary"}, None).content == "b"
    rb = parse_config_message(VALID[5])
    assert isinstance(rb, RollbackConfig) and as_config_write(rb, None).args["revision"] == 2
    with pytest.raises(TypeError):
        as_config_write(parse_config_message(VALID[1]), None)


def test_a_revision_floor_goes_with_a_publish_or_delete_to_the_store() -> None:
    """``revision_floor`` (an import keeps the archive's revisions): optional, nil or 0 is
    none, and the owner's store makes at least that revision."""
    plain = parse_config_message(body("config_publish", data_id="x", content="a"))
    assert isinstance(plain, PublishConfig) and plain.revision_floor == 0
    assert "revision_floor" not in as_config_write(plain, None).args
    nil = parse_config_message(body("config_publish", data_id="x", content="a",
                                    revision_floor=None))  # fmt: skip
    assert isinstance(nil, PublishConfig) and nil.revision_floor == 0
    req = parse_config_message(body("config_publish", data_id="x", content="a", if_revision=0,
                                    revision_floor=2**62))  # fmt: skip
    assert isinstance(req, PublishConfig) and req.revision_floor == 2**62
    w = as_config_write(parse_config_message(body(
        "config_publish", data_id="x", content="a", if_revision=0, revision_floor=6)), None)
    assert w.args["revision_floor"] == 6
    for op, more in (("config_gray", {"content": "g", "labels": {"a": "b"}}),
                     ("config_promote", {}), ("config_gray_drop", {})):  # fmt: skip
        g = as_config_write(parse_config_message(body(op, data_id="x", revision_floor=4, **more)),
                            None)  # fmt: skip
        assert g.args["revision_floor"] == 4, op  # an import's replayed gray step
    d = parse_config_message(body("config_delete", data_id="x", revision_floor=9))
    assert isinstance(d, DeleteConfig) and as_config_write(d, None).args["revision_floor"] == 9
    store = ConfigStore("n1")
    a = w.args
    entry = store.publish(w.key, a["content"], a["type"], now=1.0, if_revision=w.if_revision,
                          revision_floor=a["revision_floor"])  # fmt: skip
    assert entry.revision == 6
    assert store.delete(d.key, now=2.0, revision_floor=9).revision == 9


# -- fuzzing ---------------------------------------------------------------------------------
names = st.one_of(
    st.sampled_from(["app.yaml", "a", "DEFAULT_GROUP", "public", "x@y:z", "", "a b", "é"]),
    st.text(max_size=300),
    st.text("0123456789abcdefABCDEF", min_size=30, max_size=34),  # md5-like
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.text(max_size=50),
    st.binary(max_size=50),
    st.lists(st.text(max_size=10), max_size=5),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
FIELDS = [
    "namespace",
    "group",
    "data_id",
    "content",
    "type",
    "if_revision",
    "desc",
    "tags",
    "revision",
    "min_revision",
]
FIELDS += ["labels", "clients", "pattern", "page_size", "cursor", "request_id", "md5"]
FIELDS += ["revision_floor"]


def check_accepted(req: Any) -> None:
    """What the parser accepts is within the core's rules."""
    if hasattr(req, "key"):
        assert check_config_key(*req.key) == req.key
    if isinstance(req, PublishConfig | PublishGray):
        assert len(req.content.encode()) <= 1024
    if isinstance(req, PublishConfig):
        assert req.type is None or req.type in CONFIG_TYPES
    if isinstance(req, PublishGray):
        assert req.rule.labels or req.rule.addresses
    if isinstance(req, ListenConfig):
        assert req.md5 in (None, "") or re.fullmatch("[0-9a-f]{32}", req.md5), req.md5
    request_id = getattr(req, "request_id", "")
    assert request_id == "" or check_request_id(request_id) == request_id
    for name in ("if_revision", "revision", "min_revision"):
        value = getattr(req, name, None)
        assert value is None or (type(value) is int and 0 <= value < 2**63)
    floor = getattr(req, "revision_floor", 0)
    assert type(floor) is int and 0 <= floor <= 2**62


def parse_or_reject(msg: Any) -> None:
    """Bytes go through the decoder first, anything else straight to the parser."""
    try:
        if isinstance(msg, bytes):
            req = parse_config_request(msg, max_content_bytes=1024)
        else:
            req = parse_config_message(msg, max_content_bytes=1024)
    except RequestRejected as exc:
        assert isinstance(exc.code, ErrorCode) and exc.message
        return
    check_accepted(req)


@FUZZ
@given(
    op=st.one_of(st.sampled_from(CONFIG_OPS), values),
    fields=st.dictionaries(st.sampled_from(FIELDS), st.one_of(values, names), max_size=8),
)
def test_fuzz_random_fields(op: Any, fields: dict[str, Any]) -> None:
    parse_or_reject({"v": 1, "id": 1, "op": op, **fields})


@FUZZ
@given(
    index=st.integers(0, len(VALID) - 1),
    field=st.sampled_from(FIELDS + ["v", "id", "op"]),
    value=st.one_of(values, names),
    drop=st.booleans(),
)
def test_fuzz_mutated_valid_requests(index: int, field: str, value: Any, drop: bool) -> None:
    msg = copy.deepcopy(VALID[index])
    if drop:
        msg.pop(field, None)
    else:
        msg[field] = value
    parse_or_reject(msg)


@FUZZ
@given(data=st.binary(max_size=200))
def test_fuzz_raw_bytes(data: bytes) -> None:
    parse_or_reject(data)


def test_validated_keys_are_cached_and_bad_ones_still_refused() -> None:
    """check_config_key remembers keys it validated; what it refuses is refused every
    time, also a value equal to a cached one but of another type."""
    from meshreg.configcenter import model
    from meshreg.configcenter.model import ConfigRejected

    class Name(str):
        pass

    key = check_config_key(None, "G", "cached.id")
    assert (
        key == ConfigKey("public", "G", "cached.id") and model._KEY_CACHE[(None, "G", "cached.id")]
    )
    assert check_config_key(None, "G", "cached.id") is key  # from the cache
    for bad in (("public", "G", "bad id"), ("public", "G", Name("cached.id")), (None, "G", [1])):
        for _ in range(2):
            with pytest.raises(ConfigRejected):
                check_config_key(*bad)
    saved = model.KEY_CACHE_MAX
    model.KEY_CACHE_MAX = len(model._KEY_CACHE)  # full: emptied, then the new key
    try:
        assert check_config_key("ns", "G", "another") == ConfigKey("ns", "G", "another")
        assert list(model._KEY_CACHE) == [("ns", "G", "another")]
    finally:
        model.KEY_CACHE_MAX = saved


def test_a_packed_result_makes_the_same_reply_bytes() -> None:
    from meshreg.wire.replies import encode_ok, encode_ok_packed

    result = {"data_id": "a", "content": "x" * 300, "revision": 7, "tags": {"k": "v"}}
    for req_id in (0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1):
        assert encode_ok_packed(req_id, msgpack.packb(result)) == encode_ok(req_id, result)


def test_a_listen_answers_another_version_of_the_held_revision_when_given_its_md5() -> None:
    from meshreg.configcenter.model import content_md5
    from meshreg.wire.config_replies import entry_result, listen_result

    s = ConfigStore("n1")
    k = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")
    s.publish(k, "a: 1", now=1.0)
    cur = s.publish_gray(k, "a: canary", labels={"env": "c"}, now=2.0)
    main, gray = entry_result(cur), entry_result(cur, True)
    held_main, held_gray = content_md5("a: 1"), content_md5("a: canary")
    assert listen_result(cur, 1, main)["entry"] == main  # newer: as before
    assert listen_result(cur, 2, main)["entry"] is None  # no md5 sent: the revision decides
    assert listen_result(cur, 2, main, held_main)["entry"] is None  # holds this one
    assert listen_result(cur, 2, gray, held_gray)["entry"] is None  # a gray client, too
    assert listen_result(cur, 2, main, "0" * 32)["entry"] == main  # another version
    assert listen_result(cur, 2, gray, held_main)["entry"] == gray  # the gray one is its
    assert listen_result(cur, 2, main, "")["entry"] == main  # held a delete at 2
    assert listen_result(cur, 3, main, "0" * 32)["entry"] is None  # the node is behind
    gone = s.delete(k, now=3.0)
    answer = listen_result(gone, 3, None, held_main)
    assert answer == {"revision": 3, "entry": None, "deleted": True}  # the client drops it
    assert listen_result(None, 0, None, None) == {"revision": 0, "entry": None, "deleted": False}


def test_the_resend_flag_is_a_boolean_with_a_request_id() -> None:
    rid = "0123456789abcdef0123456789abcdef"
    ok = parse_config_message(body("config_delete", data_id="a", request_id=rid, resend=True))
    assert ok.resend is True  # type: ignore[union-attr]
    assert parse_config_message(VALID[0]).resend is False  # type: ignore[union-attr]
    for bad, says in (
        (body("config_delete", data_id="a", request_id=rid, resend=1), "true or false"),
        (body("config_publish", data_id="a", content="x", resend=True), "needs a 'request_id'"),
    ):
        with pytest.raises(RequestRejected) as info:
            parse_config_message(bad)
        assert info.value.code is ErrorCode.INVALID_ARGUMENT and says in str(info.value)
        assert "resend" in str(info.value)


@pytest.mark.parametrize("name", [".", ".."])
@pytest.mark.parametrize("field", ["data_id", "group", "namespace"])
def test_a_publish_may_not_create_a_dot_name(field: str, name: str) -> None:
    """``.`` and ``..`` are path components in an export and the disk cache (review11:
    ``configs/../x``): no new data id has one; a data id made before the rule can still be
    read, listened to and deleted (those ops name it without creating it)."""
    fields = {"data_id": "x", field: name}
    with pytest.raises(RequestRejected) as info:
        parse_config_message(body("config_publish", content="c", **fields))
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert f"field '{field}' {name!r} is not a name a config may have" in info.value.message
    for op in ("config_get", "config_delete", "config_history", "config_listen"):
        assert parse_config_message(body(op, **fields)).op == op
    assert parse_config_message(body("config_publish", content="c", data_id=".x.")).op


def test_the_store_refuses_a_dot_name_on_publish_and_stores_nothing() -> None:
    s = ConfigStore("n1")
    for key in (ConfigKey("public", "g", ".."), ConfigKey("public", "..", "x"),
                ConfigKey(".", "g", "x")):  # fmt: skip
        with pytest.raises(ConfigRejected, match="is not a name a config may have"):
            s.publish(key, "c", now=1.0)
        assert s.current(key) is None


def test_a_read_resolved_to_the_gray_version_carries_the_main_one_too() -> None:
    """review17 F1: a gray client's disk copy must serve another client the main version,
    so the node sends it (``main``); a publish answered without echo leaves its content
    out there too (the client sent it)."""
    from meshreg.configcenter.model import content_md5
    from meshreg.wire.config_replies import entry_result, without_echo

    s = ConfigStore("n1")
    k = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")
    s.publish(k, "a: 1", now=1.0)
    cur = s.publish_gray(k, "a: canary", labels={"env": "c"}, now=2.0)
    gray = entry_result(cur, True)
    assert gray["content"] == "a: canary" and gray["md5"] == content_md5("a: canary")
    assert gray["main"] == {"content": "a: 1", "type": "text", "md5": content_md5("a: 1")}
    assert "main" not in entry_result(cur)  # the main version is the one served
    quiet = without_echo(entry_result(cur, True), "config_publish")
    assert quiet["content"] == "a: canary" and "content" not in quiet["main"]
    assert quiet["main"]["md5"] == content_md5("a: 1")
