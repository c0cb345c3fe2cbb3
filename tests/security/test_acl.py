"""The ACL file and its rules: parsing, every error, and properties of the access model."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.errors import ConfigError
from meshreg.security.acl import NODE, OPEN, Access, Acl, Principal, Rule
from meshreg.security.keys import generate_key_files, load_public_key, z85_to_raw
from meshreg.wire.messages import _NAME_RE


def new_key() -> str:
    return zmq.curve_keypair()[0].decode()


ORDERS_KEY = new_key()
ORDERS_KEY2 = new_key()
MONITOR_KEY = new_key()

GOOD_ACL = f"""
# who may do what on this cluster
[[client]]
name = "orders-app"
keys = ["{ORDERS_KEY}", "{ORDERS_KEY2}"]   # rotating: old and new key both act as orders-app
allow = [
  {{ namespace = "public", group = "*", service = "orders*", access = "write" }},
  {{ namespace = "public", group = "*", service = "*",       access = "read" }},
]

[[client]]
name = "payments"
key_file = "payments.pub"
allow = [{{ namespace = "pay", service = "payments", access = "admin" }}]

[[client]]
name = "monitor"
key = "{MONITOR_KEY}"
allow = [{{ namespace = "*", access = "read" }}]

[[client]]
name = "pinger"
key_files = ["pinger.pub"]
allow = []
"""


@pytest.fixture
def acl_dir(tmp_path: Path) -> Path:
    generate_key_files(tmp_path / "payments")
    generate_key_files(tmp_path / "pinger")
    (tmp_path / "acl.toml").write_text(GOOD_ACL)
    return tmp_path


def raw(key: str | bytes) -> bytes:
    return z85_to_raw(key)


def test_good_file(acl_dir: Path) -> None:
    acl = Acl.load(acl_dir / "acl.toml")
    assert [p.name for p in acl.clients] == ["orders-app", "payments", "monitor", "pinger"]
    orders = acl.by_key(raw(ORDERS_KEY))
    assert orders is not None and orders is acl.by_key(raw(ORDERS_KEY2))
    assert orders.name == "orders-app" and not orders.is_node
    assert orders.rules == (
        Rule("public", "*", "orders*", Access.WRITE),
        Rule("public", "*", "*", Access.READ),
    )
    payments = acl.by_key(raw(load_public_key(acl_dir / "payments.pub")))
    assert payments is not None and payments.rules == (
        Rule("pay", "*", "payments", Access.ADMIN),
    )  # group defaults to "*"
    monitor = acl.by_key(raw(MONITOR_KEY))
    assert monitor is not None and monitor.rules == (Rule("*", "*", "*", Access.READ),)
    pinger = acl.by_key(raw(load_public_key(acl_dir / "pinger.pub")))
    assert pinger is not None and pinger.rules == ()
    assert acl.by_key(raw(new_key())) is None  # unknown key: nobody
    assert acl.by_key(ORDERS_KEY.encode()) is None  # Z85 is not what ZAP carries
    assert acl.by_key(b"") is None
    assert acl.by_name("monitor") is monitor
    assert sorted(acl.raw_keys("orders-app")) == sorted([raw(ORDERS_KEY), raw(ORDERS_KEY2)])
    assert "4 client(s), 5 key(s)" in acl.summary


def test_key_file_relative_to_acl_not_cwd(
    acl_dir: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert len(Acl.load(acl_dir / "acl.toml").clients) == 4
    assert len(Acl.load(str(acl_dir / "acl.toml")).clients) == 4


def test_key_file_may_be_a_key_file_or_absolute(tmp_path: Path) -> None:
    key_path, _ = generate_key_files(tmp_path / "c")
    acl = Acl.from_dict(
        {"client": [{"name": "c", "key_file": str(key_path), "allow": []}]}, "inline"
    )
    assert acl.by_key(raw(load_public_key(key_path))) is not None


def test_empty() -> None:
    acl = Acl.empty()
    assert acl.clients == ()
    assert acl.by_key(raw(new_key())) is None
    assert Acl.from_dict({}).clients == ()  # a file with no clients: default deny


def changed(base: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``fields`` set (a None value removes the field)."""
    result = {**base, **fields}
    return {k: v for k, v in result.items() if v is not None}


def entry(**fields: Any) -> dict[str, Any]:
    base = {"name": "app", "key": ORDERS_KEY, "allow": [{"namespace": "public", "access": "read"}]}
    return changed(base, fields)


def rule(**fields: Any) -> dict[str, Any]:
    return changed({"namespace": "public", "group": "*", "service": "*", "access": "read"}, fields)


BAD: list[tuple[str, Any, list[str]]] = [
    ("top-level not a table", ["x"], ["must be a table"]),
    ("unknown top-level", {"clients": []}, ["unknown top-level key 'clients'"]),
    ("client a table", {"client": entry()}, ["[[client]], not [client]"]),
    ("client a string", {"client": "x"}, ["array of tables"]),
    ("entry not a table", {"client": ["x"]}, ["client entry 1", "must be a table"]),
    ("no name", {"client": [entry(name=None)]}, ["client entry 1", "'name' is missing"]),
    ("empty name", {"client": [entry(name="")]}, ["client entry 1", "'name'", "non-empty"]),
    ("name not str", {"client": [entry(name=5)]}, ["'name'", "non-empty string"]),
    ("bad name", {"client": [entry(name="a b")]}, ["'name'", "letters, digits"]),
    ("long name", {"client": [entry(name="a" * 129)]}, ["'name'", "1..128"]),
    ("unknown field", {"client": [entry(acces="x")]}, ["client 'app' (entry 1)", "'acces'"]),
    (
        "duplicate name",
        {"client": [entry(), entry(key=ORDERS_KEY2)]},
        ["client 'app' (entry 2)", "'name'", "same name"],
    ),
    (
        "key of two clients",
        {"client": [entry(), entry(name="b")]},
        ["client 'b' (entry 2)", "'key'", "also belongs to client 'app'"],
    ),
    (
        "key twice in one client",
        {"client": [entry(keys=[ORDERS_KEY])]},
        ["client 'app' (entry 1)", "'keys'", "listed twice"],
    ),
    ("no key", {"client": [entry(key=None)]}, ["client 'app' (entry 1)", "no key", "keygen"]),
    ("bad key", {"client": [entry(key="abc")]}, ["'key'", "not a CURVE public key"]),
    ("key not str", {"client": [entry(key=[ORDERS_KEY])]}, ["'key'", "must be a string"]),
    ("keys not list", {"client": [entry(key=None, keys=ORDERS_KEY)]}, ["'keys'", "list"]),
    ("bad key in keys", {"client": [entry(key=None, keys=["x"])]}, ["'keys'", "not a CURVE"]),
    (
        "missing key file",
        {"client": [entry(key=None, key_file="nope.pub")]},
        ["'key_file'", "nope.pub", "cannot read key file"],
    ),
    ("no allow", {"client": [entry(allow=None)]}, ["'allow' is missing", "allow = []"]),
    ("allow not list", {"client": [entry(allow={"namespace": "x"})]}, ["'allow'", "list"]),
    ("rule not table", {"client": [entry(allow=["read"])]}, ["allow[0]", "must be a table"]),
    (
        "rule unknown field",
        {"client": [entry(allow=[rule(), rule(servce="x")])]},
        ["client 'app' (entry 1)", "allow[1]", "'servce'"],
    ),
    ("rule no namespace", {"client": [entry(allow=[rule(namespace=None)])]}, ["'namespace'"]),
    ("rule no access", {"client": [entry(allow=[rule(access=None)])]}, ["'access' is missing"]),
    (
        "bad access",
        {"client": [entry(allow=[rule(access="wrte")])]},
        ["allow[0]", "'access'", "'wrte' is not an access level", "read, write or admin"],
    ),
    ("access int", {"client": [entry(allow=[rule(access=2)])]}, ["'access'", "int"]),
    ("access none", {"client": [entry(allow=[rule(access="none")])]}, ["'none'"]),
    ("access peer", {"client": [entry(allow=[rule(access="peer")])]}, ["'peer'"]),
    ("access upper", {"client": [entry(allow=[rule(access="READ")])]}, ["'READ'"]),
    ("empty pattern", {"client": [entry(allow=[rule(service="")])]}, ["'service'", "1..256"]),
    ("bad pattern", {"client": [entry(allow=[rule(group="a/b")])]}, ["'group'", "wildcards"]),
    ("bracket pattern", {"client": [entry(allow=[rule(service="[ab]")])]}, ["'service'"]),
    ("nul pattern", {"client": [entry(allow=[rule(namespace="a\0b")])]}, ["'namespace'"]),
    ("long pattern", {"client": [entry(allow=[rule(namespace="a" * 65)])]}, ["1..64"]),
    ("pattern not str", {"client": [entry(allow=[rule(service=3)])]}, ["'service'", "string"]),
    ("stats not bool", {"client": [entry(stats="yes")]}, ["'stats'", "true or false"]),
    ("reserved name", {"client": [entry(name="node")]}, ["'name'", "'node'", "another name"]),
]


@pytest.mark.parametrize("label,data,expected", BAD, ids=[b[0] for b in BAD])
def test_every_error_names_file_entry_and_field(
    tmp_path: Path, label: str, data: Any, expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        Acl.from_dict(data, "acl.toml", tmp_path)
    message = str(info.value)
    assert message.startswith("acl.toml: "), message
    for part in expected:
        assert part in message, (part, message)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read ACL file .*missing\.toml.*--acl"):
        Acl.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[client]\nname = 1\n")
    with pytest.raises(ConfigError, match=r"ACL file .*bad\.toml is not valid TOML"):
        Acl.load(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Acl.load(binary)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[[client]]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"wrong\.toml: client 'x' \(entry 1\): no key"):
        Acl.load(wrong)


def test_rule_checks_itself() -> None:
    with pytest.raises(ConfigError):
        Rule("a\0", "*", "*", Access.READ)
    with pytest.raises(ConfigError):
        Rule("a", "*", "*", Access.PEER)
    with pytest.raises(ConfigError):
        Rule("a", "*", "*", Access.NONE)


def test_the_issue_example() -> None:
    p = Principal(
        "orders-app",
        (
            Rule("public", "*", "orders*", Access.WRITE),
            Rule("public", "*", "*", Access.READ),
        ),
    )
    assert p.may(Access.WRITE, "public", "DEFAULT_GROUP", "orders")
    assert p.may(Access.WRITE, "public", "g", "orders-v2")
    assert not p.may(Access.WRITE, "public", "DEFAULT_GROUP", "payments")
    assert p.may(Access.READ, "public", "DEFAULT_GROUP", "payments")
    assert not p.may(Access.ADMIN, "public", "DEFAULT_GROUP", "orders")
    assert not p.may(Access.READ, "private", "DEFAULT_GROUP", "orders")
    assert not p.may(Access.READ, "public2", "DEFAULT_GROUP", "orders")  # whole names only
    assert not p.may(Access.WRITE, "public", "DEFAULT_GROUP", "xorders")
    assert p.may(Access.NONE, "x", "y", "z")  # authenticated is enough
    assert not p.may(Access.PEER, "public", "DEFAULT_GROUP", "orders")
    assert p.may_all(Access.READ, "public")
    assert p.may_all(Access.READ, "public", "DEFAULT_GROUP")
    assert not p.may_all(Access.WRITE, "public")
    assert not p.may_all(Access.READ, "private")
    assert not p.may_all(Access.READ, "*")  # not every namespace
    assert p.may_some(Access.WRITE, "public") and not p.may_some(Access.READ, "private")


def test_may_all_needs_patterns_that_cover_everything() -> None:
    p = Principal("p", (Rule("p?", "*", "*", Access.READ), Rule("*", "g", "*", Access.ADMIN)))
    assert p.may_all(Access.READ, "pa") and not p.may_all(Access.READ, "pab")
    assert not p.may_all(Access.READ, "*")  # "p?" matches the text "*", not every namespace
    assert p.may_all(Access.ADMIN, "anything", "g")
    assert not p.may_all(Access.ADMIN, "anything")  # only group g, not every group
    assert not p.may_all(Access.ADMIN, "anything", "h")
    assert not p.may_all(Access.ADMIN, "*")
    q = Principal("q", (Rule("**", "*", "***", Access.READ),))
    assert q.may_all(Access.READ, "*") and q.may_all(Access.READ, "*", "*")
    svc = Principal("s", (Rule("*", "*", "a*", Access.ADMIN),))
    assert not svc.may_all(Access.READ, "ns")  # not every service


def test_node_and_open() -> None:
    for p in (NODE, OPEN):
        assert p.may(Access.PEER, "a", "b", "c") and p.may(Access.ADMIN, "a", "b", "c")
        assert p.may_all(Access.ADMIN, "*") and p.may_some(Access.PEER, "x")
    assert NODE.is_node and not OPEN.is_node
    assert NODE.name == "node" and NODE.rules == ()


# -- properties ----------------------------------------------------------------------------------
NAME_CHARS = string.ascii_letters + string.digits + "@.:_-"
names = st.text(NAME_CHARS, min_size=1, max_size=12)
patterns = st.text(NAME_CHARS + "*?", min_size=1, max_size=8)
# small alphabets so patterns and names collide often
small_names = st.text("ab.", min_size=1, max_size=4)
small_patterns = st.text("ab.*?", min_size=1, max_size=4)
levels = st.sampled_from([Access.READ, Access.WRITE, Access.ADMIN])
rules = st.builds(Rule, small_patterns, small_patterns, small_patterns, levels)
principals = st.builds(Principal, st.just("p"), st.lists(rules, max_size=4).map(tuple))


@settings(max_examples=300, deadline=None)
@given(principals, small_names, small_names, small_names)
def test_levels_nest(p: Principal, ns: str, group: str, service: str) -> None:
    """admin ⊇ write ⊇ read, for may, may_all and may_some."""
    for higher, lower in ((Access.ADMIN, Access.WRITE), (Access.WRITE, Access.READ)):
        if p.may(higher, ns, group, service):
            assert p.may(lower, ns, group, service)
        if p.may_all(higher, ns, group):
            assert p.may_all(lower, ns, group)
        if p.may_some(higher, ns):
            assert p.may_some(lower, ns)


@settings(max_examples=300, deadline=None)
@given(principals, small_names, small_names, small_names, levels)
def test_may_is_a_union_of_rules(
    p: Principal, ns: str, group: str, service: str, access: Access
) -> None:
    """Exactly: some rule of at least that level matches all three whole names."""
    import fnmatch

    expected = any(
        r.access >= access
        and fnmatch.fnmatchcase(ns, r.namespace)
        and fnmatch.fnmatchcase(group, r.group)
        and fnmatch.fnmatchcase(service, r.service)
        for r in p.rules
    )
    assert p.may(access, ns, group, service) == expected
    if p.may_all(access, ns, group):
        assert p.may(access, ns, group, service)  # every service includes this one
    if p.may_all(access, ns):
        assert p.may_all(access, ns, group)
    if p.may(access, ns, group, service):
        assert p.may_some(access, ns, group) and p.may_some(access, ns)


@settings(max_examples=200, deadline=None)
@given(names, names, names, levels)
def test_no_rule_denies(ns: str, group: str, service: str, access: Access) -> None:
    nobody = Principal("nobody", ())
    assert not nobody.may(access, ns, group, service)
    assert not nobody.may_all(access, ns) and not nobody.may_some(access, ns)
    assert not nobody.may_all(access, "*")


@settings(max_examples=300, deadline=None)
@given(patterns, names, names, names, levels)
def test_a_pattern_never_matches_across_namespaces(
    ns_pattern: str, other_ns: str, group: str, service: str, access: Access
) -> None:
    """A rule for namespace pattern P grants nothing in a namespace P does not match, even
    if the names around it would make P match the joined text (no matching across '/' or NUL)."""
    import fnmatch

    p = Principal("p", (Rule(ns_pattern, "*", "*", Access.ADMIN),))
    for ns in (other_ns, other_ns + "\0" + group, f"{other_ns}/{group}"):
        allowed = p.may(access, ns, group, service)
        assert allowed == fnmatch.fnmatchcase(ns, ns_pattern)
    literal = Principal("l", (Rule(other_ns, "*", "*", Access.ADMIN),))
    for ns in (other_ns + "x", "x" + other_ns, other_ns[:-1] or "x"):
        if ns != other_ns:
            assert not literal.may(access, ns, group, service)
            assert not literal.may_all(access, ns) and not literal.may_some(access, ns)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=8))
def test_name_alphabet_matches_the_wire(text: str) -> None:
    from meshreg.security.acl import NAME_RE

    assert (NAME_RE.match(text) is None) == (_NAME_RE.match(text) is None)


def test_name_limits_match_the_wire() -> None:
    from meshreg.security import acl
    from meshreg.wire import limits

    assert acl.MAX_NAMESPACE_LEN == limits.MAX_NAMESPACE_LEN
    assert acl.MAX_GROUP_LEN == limits.MAX_GROUP_LEN
    assert acl.MAX_SERVICE_LEN == limits.MAX_SERVICE_LEN


def test_remembered_answers_are_bounded_and_right() -> None:
    from meshreg.security.acl import MAX_REMEMBERED

    p = Principal("p", (Rule("public", "*", "even*", Access.WRITE),))
    for round_ in range(2):  # the second round answers from memory (until it is forgotten)
        for i in range(MAX_REMEMBERED + 10):
            service = f"{'even' if i % 2 == 0 else 'odd'}{i}"
            assert p.may(Access.WRITE, "public", "g", service) == (i % 2 == 0), (round_, i)
            assert not p.may(Access.ADMIN, "public", "g", service)
            assert len(p._answers) <= MAX_REMEMBERED
    assert p == Principal("p", p.rules)  # what it remembers is not part of its identity


def test_refuse_key(acl_dir: Path) -> None:
    acl = Acl.load(acl_dir / "acl.toml")
    acl.refuse_key(raw(new_key()))  # a key no client holds: fine
    with pytest.raises(ConfigError, match=r"acl\.toml: client 'monitor' has the cluster key"):
        acl.refuse_key(raw(MONITOR_KEY))
