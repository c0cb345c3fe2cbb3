"""The config store (meshreg/configcenter/core.py): versioning, CAS, tombstones, lists,
history and its retention, rollback, gray release, the merge rule, bad input.  Fake
clock: ``now`` is a number."""

from __future__ import annotations

import dataclasses
import itertools
import random
import re

import pytest

from meshreg.configcenter.core import (
    AGE_SKEW_MARGIN,
    MAX_VERSIONS_PER_REVISION,
    SETTLE_SECONDS,
    ConfigStore,
    Outcome,
    floor_bucket,
)
from meshreg.configcenter.model import (
    HARD_MAX_CONTENT_BYTES,
    NAME_PATTERN,
    Change,
    ConfigEntry,
    ConfigKey,
    ConfigLimits,
    ConfigRejected,
    check_gray_rule,
    content_md5,
    merge_order,
)
from meshreg.errors import ErrorCode

INVALID = ErrorCode.INVALID_ARGUMENT

K = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")
DAY = 86400.0


def store(**limits: object) -> ConfigStore:
    return ConfigStore("n1", ConfigLimits(**limits))  # type: ignore[arg-type]


def rejected(fn: object, *args: object, **kw: object) -> ConfigRejected:
    with pytest.raises(ConfigRejected) as info:
        fn(*args, **kw)  # type: ignore[operator]
    return info.value


def test_revisions_grow_even_when_content_goes_back() -> None:
    s = store()
    e1 = s.publish(K, "a: 1", "yaml", now=1.0, by="ops")
    e2 = s.publish(K, "a: 2", "yaml", now=2.0)
    e3 = s.publish(K, "a: 1", "yaml", now=3.0)
    assert [e.revision for e in (e1, e2, e3)] == [1, 2, 3]
    assert e3.md5 == e1.md5 == content_md5("a: 1")
    got = s.get(K)
    assert (got.revision, got.content, got.type, got.modified) == (3, "a: 1", "yaml", 3.0)
    assert s.get(K, revision=1).modified_by == "ops"
    assert s.get(K, revision=2).content == "a: 2"


def test_cas_zero_means_must_not_exist_and_mismatch_names_current() -> None:
    s = store()
    s.publish(K, "x", now=1.0, if_revision=0)
    s.commit(K, 1, "n1", content_md5("x"))  # a majority acknowledged it
    exc = rejected(s.publish, K, "y", now=2.0, if_revision=0)
    assert exc.code is ErrorCode.CONFLICT and "revision 1" in exc.message
    exc = rejected(s.publish, K, "y", now=2.0, if_revision=5)
    assert exc.code is ErrorCode.CONFLICT and "is at revision 1, not 5" in exc.message
    assert "with if_revision 1 (CLI: --if-revision 1)" in exc.message  # the wire's own name
    assert s.get(K).content == "x" and s.get(K).revision == 1  # nothing changed
    s.publish(K, "y", now=2.0, if_revision=1)
    assert s.get(K).revision == 2
    assert s.stats()["rejected"] == {"cas_conflict": 2}


def test_a_cas_on_what_reads_show_while_a_newer_version_waits_for_its_majority() -> None:
    """review38: the owner held its own revision 14 that no majority had acknowledged
    (reads show 13) and answered ``if_revision 13`` with CONFLICT "is at revision 14":
    a client re-reading (13) and writing again spun ~700 times a second.  Until the
    version settles (acknowledged, or SETTLE_SECONDS old) such a CAS is UNAVAILABLE,
    nothing written; a CAS on neither revision is a CONFLICT at once; one on the
    unacknowledged revision itself goes on from it."""
    s = store()
    s.publish(K, "a", now=1.0)
    s.commit(K, 1, "n1", content_md5("a"))
    s.publish(K, "b", now=2.0)  # revision 2: no majority yet
    assert s.get(K, now=2.1).revision == 1
    exc = rejected(s.publish, K, "c", now=2.1, if_revision=1)
    assert exc.code is ErrorCode.UNAVAILABLE and "nothing was written" in exc.message
    assert "revision 2 is being written" in exc.message and "reads show 1" in exc.message
    exc = rejected(s.delete, K, now=2.1, if_revision=1)
    assert exc.code is ErrorCode.UNAVAILABLE
    exc = rejected(s.publish, K, "c", now=2.1, if_revision=7)
    assert exc.code is ErrorCode.CONFLICT and "is at revision 2, not 7" in exc.message
    assert s.stats()["rejected"] == {"cas_in_flight": 2, "cas_conflict": 1}
    assert s.current(K).revision == 2  # nothing changed
    # settled (outcome unknown, yet it stays: reads show it): the CAS on 1 conflicts
    exc = rejected(s.publish, K, "c", now=2.0 + SETTLE_SECONDS, if_revision=1)
    assert exc.code is ErrorCode.CONFLICT and "is at revision 2, not 1" in exc.message
    # acknowledged: the same at once
    s.publish(K, "c", now=5.0, if_revision=2)
    s.commit(K, 3, "n1", content_md5("c"))
    exc = rejected(s.publish, K, "d", now=5.1, if_revision=2)
    assert exc.code is ErrorCode.CONFLICT
    # a create racing a create: reads show none, the CAS 0 waits for the first
    t = ConfigKey(K.namespace, K.group, "t")
    s.publish(t, "x", now=6.0, if_revision=0)
    exc = rejected(s.publish, t, "y", now=6.1, if_revision=0)
    assert exc.code is ErrorCode.UNAVAILABLE and "reads show none" in exc.message
    # a delete waiting for its majority: a CAS on the live revision it replaces waits
    s.publish(t, "z", now=9.0, if_revision=1)  # settled 1 -> 2, unacknowledged
    s.commit(t, 2, "n1", content_md5("z"))
    s.delete(t, now=10.0, if_revision=2)
    exc = rejected(s.publish, t, "w", now=10.1, if_revision=2)
    assert exc.code is ErrorCode.UNAVAILABLE and "a delete at revision 3" in exc.message


def test_a_node_ahead_settles_a_version_by_the_clusters_clock() -> None:
    """review42 F2: ``modified`` is the writer's clock; a node whose clock runs 10 s ahead
    found every unacknowledged version from its peers settled on arrival and showed it at
    once.  With its lead (``clock_lead``, the runtime's estimate) the version settles
    SETTLE_SECONDS after its write by the cluster's clock, as on the other nodes; a CAS
    on what reads show waits for it the same."""
    s = store()
    s.publish(K, "a", now=100.0)
    s.commit(K, 1, "n1", content_md5("a"))
    late = ConfigEntry(K, 2, "n2", "b", "text", content_md5("b"), 200.0)
    s.apply(late)  # a peer's record, written at 200.0 on its (right) clock
    s.clock_lead = 10.0
    assert s.shown(K, 210.01).revision == 1  # our clock: 210.01, the cluster's: 200.01
    assert rejected(s.publish, K, "c", now=210.01, if_revision=1).code is ErrorCode.UNAVAILABLE
    assert s.shown(K, 212.49).revision == 1
    assert s.shown(K, 212.51).revision == 2  # 2.5 s after its write, by the cluster's clock
    s.clock_lead = 0.0
    assert s.shown(K, 202.51).revision == 2


def test_a_version_shown_before_another_won_its_revision_stays_shown_till_that_settles() -> None:
    """The fault simulation's seed 463: a node cut off alone made r10 (never
    acknowledged) and showed it by the settle rule; healed, the majority's r10 arrived
    (a larger origin: it wins the revision) and waited for its commit message, and the
    node showed r9 meanwhile: reads and listeners stepped back a revision.  The version
    of the same revision that was shown stays shown until the winner settles."""
    s = store()
    s.now = 100.0
    s.publish(K, "r9", now=100.0)
    s.commit(K, 1, "n1", content_md5("r9"))
    s.now = 101.0
    mine = ConfigEntry(K, 2, "10.9.0.2:7400", "mine", "text", content_md5("mine"), 101.0)
    s.apply(mine)  # its own write, cut off: no majority, outcome unknown
    assert s.shown(K, 103.6) is mine
    s.now = 110.0
    theirs = ConfigEntry(K, 2, "10.9.0.3:7400", "theirs", "text", content_md5("theirs"), 109.0)
    s.apply(theirs)  # the majority's, at the same revision: it wins, not settled here yet
    assert s.current(K) is theirs
    assert s.shown(K, 110.0) is mine  # not r1
    s.commit(K, 2, "10.9.0.3:7400", content_md5("theirs"))
    assert s.shown(K, 110.0).content == "theirs"


def test_a_version_settles_by_when_it_reached_this_node_whatever_its_writers_clock() -> None:
    """review44 F1: a writer 10 s behind stamps ``modified`` 10 s in the past; every peer
    with a right clock found its unacknowledged versions settled on arrival and showed
    them (reads, listeners) while the write was still undecided, and such a version was
    then lost.  F2: a writer 20 s ahead made them wait 2.5 s + 20 s.  A version stored
    while the runtime gives the time (``now``) settles SETTLE_SECONDS after it reached
    this node, by this node's clock: the writer's clock does not matter; acknowledged,
    it shows at once; versions loaded at a start (no time given) keep the rule by
    ``modified``."""
    s = store()
    s.now = 100.0
    s.publish(K, "a", now=100.0)
    s.commit(K, 1, "n1", content_md5("a"))
    s.now = 300.0
    behind = ConfigEntry(K, 2, "n2", "b", "text", content_md5("b"), 290.0)  # writer -10 s
    s.apply(behind)
    assert s.shown(K, 300.01).revision == 1  # by ``modified``: settled 7.5 s ago
    assert rejected(s.publish, K, "c", now=300.01, if_revision=1).code is ErrorCode.UNAVAILABLE
    assert s.settles_at(behind) == 300.0 + SETTLE_SECONDS
    assert s.shown(K, 302.49).revision == 1 and s.shown(K, 302.51).revision == 2
    s.now = 400.0
    ahead = ConfigEntry(K, 3, "n2", "c", "text", content_md5("c"), 420.0)  # writer +20 s
    s.apply(ahead)
    assert s.shown(K, 402.49).revision == 2 and s.shown(K, 402.51).revision == 3
    s.now = 500.0
    s.apply(ConfigEntry(K, 4, "n2", "d", "text", content_md5("d"), 480.0, committed=True))
    assert s.shown(K, 500.0).revision == 4  # acknowledged: at once
    assert s._settle_at == {(K, 2, "n2", content_md5("b")): 302.5,
                            (K, 3, "n2", content_md5("c")): 402.5}  # fmt: skip
    s.commit(K, 3, "n2", content_md5("c"))  # acknowledged later: no longer kept
    assert list(s._settle_at) == [(K, 2, "n2", content_md5("b"))]
    # its own write (the writer's clock ahead of the cluster's): 2.5 s after, by its clock
    own = store()
    own.clock_lead = 20.0
    own.now = 50.0
    own.publish(K, "x", now=50.0)
    assert own.shown(K, 52.49) is None and own.shown(K, 52.51).revision == 1
    # a version removed from the history leaves nothing behind
    pruned = store(keep_revisions=1)
    pruned.now = 10.0
    for i in range(5):
        pruned.publish(K, f"v{i}", now=10.0 + i)
    while pruned.prune(20.0):
        pass
    assert list(pruned._settle_at) == [(K, 5, "n1", content_md5("v4"))]


def test_a_revision_of_a_data_id_that_does_not_exist_says_so() -> None:
    """review45 F10: "no revision 99 here (current none; ...)" for a data id never written."""
    exc = rejected(store().get, K, revision=99, now=1.0)
    assert exc.code is ErrorCode.NOT_FOUND and "the data id does not exist" in exc.message
    s = store()
    s.publish(K, "a", now=1.0)
    assert "(none shown yet;" in rejected(s.get, K, revision=99, now=1.0).message
    s.commit(K, 1, "n1", content_md5("a"))
    assert "(current 1;" in rejected(s.get, K, revision=99, now=1.0).message


def test_delete_is_a_tombstone_revision_that_never_resurrects() -> None:
    s = store()
    s.publish(K, "x", now=1.0)
    exc = rejected(s.delete, K, now=2.0, if_revision=7)
    assert exc.code is ErrorCode.CONFLICT
    tomb = s.delete(K, now=2.0, if_revision=1)
    assert tomb.deleted and tomb.revision == 2 and tomb.change is Change.DELETE
    exc = rejected(s.get, K)
    assert exc.code is ErrorCode.NOT_FOUND and "deleted at revision 2" in exc.message
    # a late copy of revision 1 from a peer is stored in history, never current again
    old = ConfigEntry(K, 1, "n2", "old", "text", content_md5("old"), 0.5)
    applied = s.apply(old)
    assert applied.outcome is Outcome.HISTORY and s.current(K) == tomb
    # publishing again continues the sequence; 0 means "must not exist": true after a delete
    again = s.publish(K, "new", now=3.0, if_revision=0)
    assert again.revision == 3
    assert rejected(s.delete, ConfigKey("public", "g", "none"), now=4.0).code is (
        ErrorCode.NOT_FOUND
    )


def test_list_pages_with_cursor_and_pattern() -> None:
    s = store()
    for g, d in itertools.product(("g1", "g2"), ("a.yaml", "b.yaml", "ab.json", "c")):
        s.publish(ConfigKey("public", g, d), d, now=1.0)
    s.publish(ConfigKey("other", "g1", "a.yaml"), "x", now=1.0)
    s.delete(ConfigKey("public", "g1", "c"), now=2.0)
    seen = []
    cursor = None
    while True:
        page = s.list_page("public", page_size=3, cursor=cursor)
        seen += [(e.key.group, e.key.data_id) for e in page.items]
        assert len(page.items) <= 3
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(seen) and len(seen) == 7  # the deleted one is not listed
    page = s.list_page("public", group="g2", pattern="a*")
    assert [e.key.data_id for e in page.items] == ["a.yaml", "ab.json"]
    page = s.list_page("public", pattern="?.yaml")
    assert [str(e.key) for e in page.items] == [
        "public/g1/a.yaml",
        "public/g1/b.yaml",
        "public/g2/a.yaml",
        "public/g2/b.yaml",
    ]
    assert rejected(s.list_page, "public", pattern="a/b").reason == "bad_pattern"
    assert rejected(s.list_page, "public", cursor="nonsense").reason == "bad_cursor"


def test_a_sparse_pattern_scans_a_bounded_number_of_keys() -> None:
    s = store()
    for i in range(100):
        s.publish(ConfigKey("public", "g", f"k{i:03d}"), "x", now=1.0)
    page = s.list_page("public", pattern="nomatch*", page_size=2)
    assert page.items == [] and page.next_cursor == "g/k019"  # 10 pages' worth examined
    found = []
    cursor = None
    for _ in range(20):
        page = s.list_page("public", pattern="k09?", page_size=2, cursor=cursor)
        found += [e.key.data_id for e in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert found == [f"k09{i}" for i in range(10)]


def test_history_newest_first_paged() -> None:
    s = store()
    for i in range(1, 8):
        s.publish(K, f"v{i}", now=float(i))
    page = s.history(K, page_size=3)
    assert [e.revision for e in page.items] == [7, 6, 5] and page.next_cursor == 5
    page = s.history(K, page_size=3, before=page.next_cursor)
    assert [e.revision for e in page.items] == [4, 3, 2]
    page = s.history(K, page_size=3, before=page.next_cursor)
    assert [e.revision for e in page.items] == [1] and page.next_cursor is None


def test_rollback_makes_a_new_revision_with_the_old_content() -> None:
    s = store()
    s.publish(K, "good", "json", now=1.0, description="d1", tags={"team": "a"})
    s.publish(K, "bad", "text", now=2.0)
    e = s.rollback(K, 1, now=3.0, by="alice")
    assert (e.revision, e.content, e.type, e.description, e.tags) == (
        3,
        "good",
        "json",
        "d1",
        (("team", "a"),),
    )
    assert e.change is Change.ROLLBACK and e.modified_by == "alice"
    assert rejected(s.rollback, K, 99, now=4.0).code is ErrorCode.NOT_FOUND
    s.delete(K, now=5.0)
    assert rejected(s.rollback, K, 4, now=6.0).code is ErrorCode.NOT_FOUND  # a delete
    assert s.rollback(K, 2, now=6.0).content == "bad"  # undoes the delete


def test_gray_release_resolve_promote_drop() -> None:
    s = store()
    s.publish(K, "main", now=1.0)
    assert rejected(s.publish_gray, K, "g", now=2.0).reason == "gray_without_selector"
    assert rejected(s.publish_gray, K, "g", labels={}, clients=[], now=2.0).reason == (
        "gray_without_selector"
    )
    g = s.publish_gray(K, "gray", labels={"env": "canary"}, clients=["10.0.0.5"], now=2.0)
    assert g.revision == 2 and g.content == "main" and g.gray is not None
    assert s.resolve(K, {"env": "canary", "x": "y"}, None).content == "gray"
    assert s.resolve(K, {"env": "prod"}, None).content == "main"
    assert s.resolve(K, {}, "10.0.0.5:4000").content == "gray"
    assert s.resolve(K, {}, "10.0.0.5").gray
    assert s.resolve(K, {}, "10.0.0.6:4000").content == "main"
    # whether the address is listed is told whatever the labels (review18 F4)
    assert s.resolve(K, {"env": "canary"}, "10.0.0.5:4000").listed is True
    assert s.resolve(K, {"env": "canary"}, "10.0.0.6:4000").listed is False
    assert s.resolve(K, {"env": "canary"}, None).listed is False
    # publishing main keeps the gray version
    s.publish(K, "main2", now=3.0)
    assert s.resolve(K, {"env": "canary"}, None).content == "gray"
    p = s.promote(K, now=4.0)
    assert (p.revision, p.content, p.gray, p.md5) == (4, "gray", None, content_md5("gray"))
    assert rejected(s.promote, K, now=5.0).reason == "no_gray"
    s.publish_gray(K, "g2", clients=["10.0.0.9"], now=5.0)
    d = s.drop_gray(K, now=6.0)
    assert d.gray is None and d.content == "gray" and d.revision == 6
    assert rejected(s.drop_gray, K, now=7.0).reason == "no_gray"
    assert rejected(s.publish_gray, ConfigKey("public", "g", "nope"), "x", clients=["10.0.0.9"],
                    now=8.0).code is ErrorCode.NOT_FOUND  # fmt: skip


@pytest.mark.parametrize("entry", ["127.0.0.1:1", "[::1]:80", "[::1]", "host.example:8080"])
def test_a_gray_client_address_with_a_port_is_refused_naming_it(entry: str) -> None:
    """The node knows a client by its connection's IP only: ``host:port`` would match no
    one (review11 F-minor), so it is refused, saying to give the host, and nothing changes."""
    s = store()
    s.publish(K, "main", now=1.0)
    exc = rejected(s.publish_gray, K, "g", clients=["10.0.0.5", entry], now=2.0)
    assert exc.code is INVALID and exc.reason == "bad_gray_rule"
    assert repr(entry) in str(exc) and "give the host (IP) only" in str(exc), str(exc)
    current = s.current(K)
    assert current is not None and (current.revision, current.gray) == (1, None)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "fe80::1"])
def test_a_gray_client_host_is_accepted_and_matches_that_ip(host: str) -> None:
    rule = check_gray_rule(None, [host])
    assert rule.matches({}, host) and not rule.matches({}, "10.9.9.9")


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ("host.example", "not an IP address"),
        ("*", "not an IP address"),
        ("10.0.0.0/8", "not an IP address"),
        ("::ffff:127.0.0.1", "give '127.0.0.1'"),
        ("0:0::1", "give '::1'"),
    ],
)
def test_a_gray_client_entry_that_no_connection_shows_is_refused(entry: str, said: str) -> None:
    """review18 F7: the node compares an entry with the IP address of a connection as it
    prints it: a host name, a wildcard, a network or another spelling matched nobody."""
    with pytest.raises(ConfigRejected) as exc:
        check_gray_rule(None, [entry])
    assert exc.value.reason == "bad_gray_rule" and said in str(exc.value), str(exc.value)
    assert check_gray_rule(None, [entry], stored=True).addresses == frozenset({entry})


def test_a_stored_rule_with_a_host_port_entry_is_still_read_and_matches_no_one() -> None:
    """A version written before the check (a peer's record, the disk, an old archive)."""
    rule = check_gray_rule(None, ["127.0.0.1:1"], stored=True)
    assert rule.addresses == frozenset({"127.0.0.1:1"})
    assert not rule.matches({}, "127.0.0.1")


@pytest.mark.parametrize(
    ("call", "reason", "code"),
    [
        (lambda s: s.publish(K, "x" * 1025, now=1.0), "too_large", ErrorCode.TOO_LARGE),
        (lambda s: s.publish(K, "é" * 513, now=1.0), "too_large", ErrorCode.TOO_LARGE),
        (lambda s: s.publish(K, b"\xff\xfe", now=1.0), "invalid_utf8", INVALID),
        (lambda s: s.publish(K, "\ud800", now=1.0), "invalid_utf8", INVALID),
        (lambda s: s.publish(K, 5, now=1.0), "bad_content", INVALID),
        (lambda s: s.publish(K, "x", "ini", now=1.0), "unknown_type", INVALID),
        (
            lambda s: s.publish(ConfigKey("public", "g", "a b"), "x", now=1.0),
            "bad_name",
            INVALID,
        ),
        (
            lambda s: s.publish(ConfigKey("", "g", "a"), "x", now=1.0),
            "bad_name",
            INVALID,
        ),
        (
            lambda s: s.publish(ConfigKey("public", "g", "a" * 257), "x", now=1.0),
            "bad_name",
            INVALID,
        ),
        (lambda s: s.publish(K, "x", tags={"a b": "c"}, now=1.0), "bad_name", INVALID),
        (lambda s: s.publish(K, "x", description=7, now=1.0), "bad_description", INVALID),
        (lambda s: s.publish(K, "x", now=1.0, if_revision=-1), "bad_revision", INVALID),
        (lambda s: s.publish_gray(K, "x", labels={"a": 1}, now=1.0), "bad_gray_rule", INVALID),
    ],
)
def test_bad_input_is_refused_named_counted_and_changes_nothing(
    call: object, reason: str, code: ErrorCode
) -> None:
    s = store(max_content_bytes=1024)
    s.publish(K, "before", now=0.5)
    exc = rejected(call, s)
    assert exc.code is code and exc.reason == reason and exc.message
    assert s.get(K).content == "before" and s.get(K).revision == 1
    assert s.stats()["rejected"] == {reason: 1}
    assert s.stats()["history_entries"] == 1


def test_content_cap_is_configurable_up_to_the_hard_cap() -> None:
    ConfigLimits(max_content_bytes=HARD_MAX_CONTENT_BYTES)
    with pytest.raises(ValueError, match="10 MiB"):
        ConfigLimits(max_content_bytes=HARD_MAX_CONTENT_BYTES + 1)
    s = store(max_content_bytes=4)
    assert s.publish(K, "éé", now=1.0).revision == 1  # 4 bytes of UTF-8
    assert "4 bytes" in rejected(s.publish, K, "ééé", now=1.0).message


def test_max_configs_bounds_the_data_ids() -> None:
    s = store(max_configs=2)
    s.publish(ConfigKey("public", "g", "a"), "x", now=1.0)
    s.publish(ConfigKey("public", "g", "b"), "x", now=1.0)
    s.publish(ConfigKey("public", "g", "b"), "y", now=1.0)  # an existing one: fine
    exc = rejected(s.publish, ConfigKey("public", "g", "c"), "x", now=1.0)
    assert exc.code is ErrorCode.RESOURCE_EXHAUSTED and "2" in exc.message


def test_names_follow_the_registry_rules() -> None:
    from meshreg.wire import limits, messages

    assert messages._NAME_RE.pattern == NAME_PATTERN
    from meshreg.configcenter import model

    assert (model.MAX_NAMESPACE_LEN, model.MAX_GROUP_LEN, model.MAX_DATA_ID_LEN) == (
        limits.MAX_NAMESPACE_LEN,
        limits.MAX_GROUP_LEN,
        limits.MAX_SERVICE_LEN,
    )


# -- retention -------------------------------------------------------------------------------
def test_prune_keeps_the_last_n_revisions_in_bounded_steps() -> None:
    s = store(keep_revisions=3, keep_seconds=None, prune_step=4)
    for i in range(10):
        s.publish(K, f"v{i}", now=float(i))
    first = s.prune(100.0)
    assert len(first) == 4  # bounded
    second = s.prune(100.0)
    assert len(second) == 3
    assert s.prune(100.0) == []
    assert [e.revision for e in s.history(K).items] == [10, 9, 8]
    assert s.stats()["history_entries"] == 3
    assert sorted(e.revision for e in first + second) == list(range(1, 8))


def test_prune_by_age_never_removes_the_current_entry() -> None:
    s = store(keep_revisions=None, keep_seconds=30 * DAY)
    s.publish(K, "old", now=0.0)
    s.publish(K, "older-but-current", now=1.0)
    other = ConfigKey("public", "g", "young")
    s.publish(other, "a", now=0.0)
    s.publish(other, "b", now=29 * DAY)
    removed = s.prune(31 * DAY)
    assert [(e.key, e.revision) for e in removed] == [(K, 1), (other, 1)]
    assert s.get(K).content == "older-but-current"
    assert [e.revision for e in s.history(other).items] == [2]


def test_an_old_tombstone_is_purged_with_its_data_id() -> None:
    s = store(keep_seconds=30 * DAY)
    s.publish(K, "x", now=0.0)
    s.delete(K, now=1.0)
    assert s.prune(10 * DAY) == []
    removed = s.prune(31 * DAY + 2)
    assert len(removed) == 2 and s.current(K) is None and list(s.keys()) == []
    assert s.stats()["tombstones"] == 0 and s.stats()["history_entries"] == 0


def test_a_data_id_created_again_after_its_tombstone_was_purged_goes_on_above_it() -> None:
    """Revisions only grow per data id, purges included: a client that saw the delete
    (revision 4) must see the re-created data id as newer (review11: it restarted at 1,
    and every running client's floor hid it)."""
    s = store(keep_seconds=30 * DAY)
    for n in range(3):
        s.publish(K, f"v{n}", now=float(n))
    assert s.delete(K, now=3.0).revision == 4
    s.prune(31 * DAY + 4)
    assert s.current(K) is None and s.floors_changed
    assert s.purged_floors == {floor_bucket(K): 4}
    assert s.publish(K, "again", now=31 * DAY + 5).revision == 5
    other = next(ConfigKey("public", "g", f"o{i}") for i in range(100)
                 if floor_bucket(ConfigKey("public", "g", f"o{i}")) != floor_bucket(K))  # fmt: skip
    assert s.publish(other, "new", now=31 * DAY + 5).revision == 1  # its own bucket: 1
    twin = next(ConfigKey("public", "g", f"t{i}") for i in range(100_000)
                if floor_bucket(ConfigKey("public", "g", f"t{i}")) == floor_bucket(K))  # fmt: skip
    assert s.publish(twin, "shares the bucket", now=31 * DAY + 5).revision == 5  # above, fine


def test_a_revision_floor_keeps_an_imported_revision_and_revisions_only_grow() -> None:
    """Import into a rebuilt cluster (issue 12, review11 F-revreset): a data id absent here
    is written at the archived revision, not 1, so a client that saw it in the old cluster
    (its floor) is not left behind; present, the revision is the next one or the floor,
    whichever is higher: it never goes down."""
    s = store()
    assert s.publish(K, "from the archive", now=1.0, if_revision=0,
                     revision_floor=7).revision == 7  # fmt: skip
    assert s.publish(K, "next", now=2.0).revision == 8  # then as usual
    assert s.publish(K, "floor below", now=3.0, revision_floor=5).revision == 9  # never down
    assert s.publish(K, "floor above", now=4.0, if_revision=9, revision_floor=20).revision == 20
    assert [e.revision for e in s.history(K).items] == [20, 9, 8, 7]
    tomb = s.delete(K, now=5.0, revision_floor=30)  # a tombstone replayed by an import
    assert (tomb.revision, tomb.deleted) == (30, True)
    again = s.publish(K, "re-created", now=6.0, if_revision=0, revision_floor=25)
    assert again.revision == 31  # above its tombstone, the floor below it
    other = ConfigKey("public", "g", "fresh")
    assert s.publish(other, "x", now=7.0, revision_floor=0).revision == 1  # 0: no floor
    assert s.publish(other, "y", now=8.0, revision_floor=None).revision == 2  # type: ignore[arg-type]


def test_gray_writes_take_a_revision_floor_too() -> None:
    """``import --history`` replays a gray step at its source's revision (review33 F5):
    a gray write, a drop and a promote make the next revision or the floor, whichever is
    higher; a bad floor is refused, counted, and changes nothing."""
    s = store()
    s.publish(K, "v1", now=1.0)
    g = s.publish_gray(K, "g1", labels={"env": "c"}, now=2.0, revision_floor=4)
    assert (g.revision, g.gray.content if g.gray else None) == (4, "g1")
    assert s.drop_gray(K, now=3.0, revision_floor=2).revision == 5  # never down
    s.publish_gray(K, "g2", labels={"env": "c"}, now=4.0)
    promoted = s.promote(K, now=5.0, revision_floor=9)
    assert (promoted.revision, promoted.content, promoted.gray) == (9, "g2", None)
    with pytest.raises(ConfigRejected) as bad:
        s.publish_gray(K, "g3", labels={"env": "c"}, now=6.0, revision_floor=-1)
    assert bad.value.code is ErrorCode.INVALID_ARGUMENT and s.current(K).revision == 9  # type: ignore[union-attr]


def test_a_revision_floor_after_a_purged_tombstone_is_the_higher_of_the_two() -> None:
    s = store(keep_seconds=30 * DAY)
    for n in range(4):
        s.publish(K, f"v{n}", now=float(n))
    s.delete(K, now=4.0)  # revision 5
    s.prune(31 * DAY + 5)
    assert s.current(K) is None
    assert s.publish(K, "low floor", now=31 * DAY + 6, revision_floor=3).revision == 6
    k2 = next(ConfigKey("public", "g", f"u{i}") for i in range(100_000)
              if floor_bucket(ConfigKey("public", "g", f"u{i}")) == floor_bucket(K))  # fmt: skip
    assert s.publish(k2, "high floor", now=31 * DAY + 6, revision_floor=40).revision == 40


def test_a_delete_with_a_floor_keeps_a_tombstone_where_the_data_id_holds_less() -> None:
    """An import of a data id deleted at the source (tombstone at 12) into a target where it
    does not exist writes its tombstone at 12, so a later create goes on at 13: a client
    that saw the delete there is not left behind.  Without a floor, or a floor at or below
    what is held, deleting what does not exist stays NOT_FOUND and changes nothing."""
    s = store(keep_seconds=30 * DAY)
    absent = ConfigKey("public", "g", "gone")
    assert rejected(s.delete, absent, now=1.0).code is ErrorCode.NOT_FOUND
    assert rejected(s.delete, absent, now=1.0, if_revision=0).code is ErrorCode.NOT_FOUND
    tomb = s.delete(absent, now=2.0, if_revision=0, revision_floor=12)
    assert (tomb.revision, tomb.deleted, tomb.change) == (12, True, Change.DELETE)
    assert s.stats()["tombstones"] == 1 and s.stats()["configs"] == 0
    assert rejected(s.get, absent).code is ErrorCode.NOT_FOUND  # still nothing to read
    for floor in (0, 5, 12):  # held as far already: nothing to do
        assert rejected(s.delete, absent, now=3.0, revision_floor=floor).code is ErrorCode.NOT_FOUND
    assert s.delete(absent, now=3.5, revision_floor=15).revision == 15  # raised again
    assert s.publish(absent, "again", now=4.0, if_revision=0).revision == 16
    assert s.stats()["rejected"] == {"not_found": 6}
    # after a purge: the bucket's floor counts as held
    purged = ConfigKey("public", "g", "purged")
    s.publish(purged, "x", now=5.0)
    s.delete(purged, now=6.0)  # revision 2
    s.prune(31 * DAY + 7)
    assert s.current(purged) is None
    assert rejected(s.delete, purged, now=31 * DAY + 8, revision_floor=2).code is (
        ErrorCode.NOT_FOUND)  # fmt: skip
    assert s.delete(purged, now=31 * DAY + 8, revision_floor=9).revision == 9
    dots = ConfigKey("public", "g", "..")  # a name no data id may be created with
    assert rejected(s.delete, dots, now=1.0, revision_floor=3).code is INVALID


@pytest.mark.parametrize("floor", [-1, 2**62 + 1, 2**63, 1.5, "3", True, b"1"])
def test_a_bad_revision_floor_is_refused_counted_and_changes_nothing(floor: object) -> None:
    s = store()
    s.publish(K, "a", now=1.0)
    before = (s.stats(), s.entries(K))
    for write in (
        lambda: s.publish(K, "b", now=2.0, revision_floor=floor),  # type: ignore[arg-type]
        lambda: s.delete(K, now=2.0, revision_floor=floor),
    ):  # type: ignore[arg-type]
        exc = rejected(write)
        assert exc.code is INVALID and "'revision_floor'" in exc.message, exc.message
    after = s.stats()
    assert after.pop("rejected") == {"bad_revision": 2}
    assert {**before[0], "rejected": {}} == {**after, "rejected": {}}
    assert s.entries(K) == before[1] and s.get(K).revision == 1


def test_prune_resumes_over_many_keys() -> None:
    s = store(keep_revisions=1, keep_seconds=None, prune_step=5)
    keys = [ConfigKey("public", "g", f"k{i}") for i in range(12)]
    for key in keys:
        s.publish(key, "a", now=0.0)
        s.publish(key, "b", now=1.0)
    total = 0
    for _ in range(10):
        got = s.prune(2.0)
        assert len(got) <= 5
        total += len(got)
    assert total == 12 and s.stats()["history_entries"] == 12


def test_a_hot_data_id_among_many_is_pruned_first() -> None:
    """A prune step looks at ``prune_step`` data ids, resuming where it stopped; with
    many data ids, one written often waited a whole pass (here 40 steps) and grew by its
    write rate meanwhile.  The data ids that went past keep_revisions go first: the hot
    one stays within one step's writes of its limit, and the scan still goes on over the
    rest within the same budget."""
    s = store(keep_revisions=3, keep_seconds=None, prune_step=10)
    for i in range(400):
        s.publish(ConfigKey("public", "g", f"cold{i:03d}"), "x", now=0.0)
    hot = ConfigKey("public", "g", "hot")
    most = 0
    for i in range(600):
        s.publish(hot, f"v{i}", now=1.0 + i)
        if i % 5 == 4:  # a prune step every 5 writes: it keeps up, and behind says none
            assert len(s.prune(2000.0)) <= 10
            assert not s.prune_behind
        most = max(most, s.stats()["history_entries"] - 400)
    assert most <= 3 + 5, most  # before: up to ~200 (the writes of a 40-step pass)
    # behind: a burst beyond one step's budget says so until it is cut back
    for i in range(25):
        s.publish(hot, f"w{i}", now=700.0 + i)
    assert len(s.prune(2000.0)) == 10 and s.prune_behind
    assert len(s.prune(2000.0)) == 10 and s.prune_behind
    assert len(s.prune(2000.0)) == 5 and not s.prune_behind
    assert len(s.history(hot, 100).items) == 3


def _expected_after_prune(
    s: ConfigStore, now: float
) -> dict[ConfigKey, list[tuple[int, str, str]]]:
    """What retention keeps, computed naively from every version held (the reference)."""
    keep_n, keep_s = s.limits.keep_revisions, s.limits.keep_seconds
    cutoff = None if keep_s is None else now - keep_s - AGE_SKEW_MARGIN
    kept: dict[ConfigKey, list[tuple[int, str, str]]] = {}
    held_keys = s.keys()
    for key in held_keys:
        current = s.current(key)
        assert current is not None
        if current.deleted and cutoff is not None and current.modified < cutoff:
            continue
        by_rev: dict[int, list[ConfigEntry]] = {}
        for e in s.entries(key):
            by_rev.setdefault(e.revision, []).append(e)
        kept[key] = []
        for rank, rev in enumerate(sorted(by_rev, reverse=True)):
            too_many = keep_n is not None and rank >= keep_n
            too_old = cutoff is not None and max(v.modified for v in by_rev[rev]) < cutoff
            if rev == current.revision or not (too_many or too_old):
                kept[key].extend((v.revision, v.origin, v.md5) for v in by_rev[rev])
        kept[key].sort()
    return kept


def _reference_history_hash(s: ConfigStore, key: ConfigKey) -> int:
    """The history hash as first written: xxh64 of repr of the kept versions' sorted
    items, computed afresh (the store builds the same text from parts it keeps)."""
    import xxhash

    items = sorted(
        (e.revision, e.origin, e.md5, e.gray.md5 if e.gray else "", e.deleted, e.committed)
        for e in s.kept_versions(key)
    )
    return int(xxhash.xxh64_intdigest(repr(items).encode())) or 1


def _check_history_hashes(s: ConfigStore) -> None:
    """The cached history hashes, and those made from the parts kept, are the ones
    computed afresh by the reference; the parts' count is their bound's."""
    from meshreg.configcenter import core

    keys = list(s.keys())
    cached = [s.history_hash(k) for k in keys]
    assert cached == [_reference_history_hash(s, k) for k in keys]
    s._hashes.clear()
    assert cached == [s.history_hash(k) for k in keys]
    assert s.hash_parts == sum(map(len, s._hash_parts.values())) <= core.HASH_PARTS_MAX
    nowhere = ConfigKey("public", "g", "not-held")  # a data id not held: the empty list's
    assert s.history_hash(nowhere) == _reference_history_hash(s, nowhere)


@pytest.mark.parametrize("seed", range(30))
def test_prune_in_steps_keeps_exactly_what_retention_says(seed: int) -> None:
    """Random histories (clocks out of order, two versions at a revision, tombstones),
    pruned at growing times: after every full pass the store holds exactly what the naive
    rule keeps (the per-data-id fast path skips nothing it should remove).  In small steps
    each call is bounded; a data id resumed in a later step counts its revisions again
    (those removed by age no longer count), so it may keep more, never less."""
    rng = random.Random(seed)
    small = seed % 2 == 1
    s = store(keep_revisions=rng.choice([None, 1, 3, 8]), keep_seconds=rng.choice([None, 50.0]),
              prune_step=rng.randint(1, 7) if small else 1000)  # fmt: skip
    keys = [ConfigKey("public", "g", f"k{i}") for i in range(6)]
    now = 0.0
    for _ in range(4):
        for _ in range(rng.randint(5, 40)):
            key = rng.choice(keys)
            cur = s.current(key)
            rev = (cur.revision if cur else 0) + rng.choice([1, 1, 1, 2, 0 if cur else 1])
            deleted = rng.random() < 0.1
            content = "" if deleted else f"c{rng.random()}"
            modified = max(0.0, now + rng.uniform(-60.0, 5.0))
            e = ConfigEntry(key=key, revision=rev, origin=rng.choice(["n1", "n2", "n3"]),
                            content=content, type="text", md5=content_md5(content),
                            modified=modified, modified_by="", description="", tags=(),
                            deleted=deleted, change=Change.DELETE if deleted else Change.PUBLISH,
                            gray=None, committed=rng.random() < 0.5)  # fmt: skip
            s.apply(e)
            if rng.random() < 0.2:
                s.history_hash(key)  # cached, then changed: never served stale
                assert s.history_hash(key) == _reference_history_hash(s, key)
            if rng.random() < 0.2:  # a commit flag raised on a version held
                s.history_hash(key)
                s.commit(key, e.revision, e.origin, e.md5)
        _check_history_hashes(s)
        now += rng.uniform(10.0, 40.0)
        expected = _expected_after_prune(s, now)
        for _ in range(10_000):
            got = s.prune(now)
            # bounded: the step, overshot by at most one revision's versions (or one
            # expired tombstone's whole data id)
            step = s.limits.prune_step
            assert len(got) <= step + MAX_VERSIONS_PER_REVISION or len({e.key for e in got}) == 1
            if not got and s._prune_after is None:
                break
        now_held = s.keys()
        held = {k: sorted((e.revision, e.origin, e.md5) for e in s.entries(k)) for k in now_held}
        if small:
            assert held.keys() == expected.keys()
            assert all(set(expected[k]) <= set(held[k]) for k in held)
        else:
            assert held == expected
        assert s.stats()["history_entries"] == sum(map(len, held.values()))
        _check_history_hashes(s)
        later = now + rng.uniform(0.0, 10.0)  # the age cutoff moves, nothing else changes
        while s.prune(later) or s._prune_after is not None:
            pass
        _check_history_hashes(s)


@pytest.mark.parametrize("seed", range(12))
def test_history_hashes_with_few_parts_kept(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The random histories above with room for 12 revisions' parts only: data ids past
    the bound hash without parts, those within re-use theirs, all equal the reference."""
    from meshreg.configcenter import core

    monkeypatch.setattr(core, "HASH_PARTS_MAX", 12)
    test_prune_in_steps_keeps_exactly_what_retention_says(seed)


# -- the merge rule --------------------------------------------------------------------------
def version(rev: int, origin: str, content: str, committed: bool = False) -> ConfigEntry:
    return ConfigEntry(K, rev, origin, content, "text", content_md5(content), 1.0,
                       committed=committed)  # fmt: skip


def test_two_owners_at_one_revision_converge_and_the_loser_stays_in_history() -> None:
    a = version(3, "node-a", "from a")
    b = version(3, "node-b", "from b")
    winners = set()
    for order in ((a, b), (b, a)):
        s = ConfigStore("x")
        results = [s.apply(v) for v in order]
        assert results[0].ack and not results[1].ack  # one version acked per revision
        winners.add(s.current(K))
        assert {e.origin for e in s.history(K).items} == {"node-a", "node-b"}
        assert s.stats()["conflicts"] == 1
    assert winners == {b}  # the larger origin id, whatever the order


def test_the_committed_version_wins_its_revision() -> None:
    a = version(3, "node-a", "from a")
    b = version(3, "node-b", "from b")
    s = ConfigStore("x")
    s.apply(a)
    s.apply(b)
    assert s.current(K) == b
    marked = s.commit(K, 3, "node-a", a.md5)
    assert marked is not None and marked.committed and s.current(K) == marked
    assert s.commit(K, 3, "node-a", a.md5) is None  # already
    # a committed copy arriving by replication has the same effect on another node
    t = ConfigStore("y")
    t.apply(b)
    dup = t.apply(version(3, "node-a", "from a", committed=True))
    assert dup.outcome is Outcome.CURRENT and t.current(K).origin == "node-a" and not dup.ack
    assert t.apply(b).outcome is Outcome.DUPLICATE and t.apply(b).ack  # b was first here


def test_merge_is_order_independent_randomized() -> None:
    rng = random.Random(7)
    pool = [
        version(rev, origin, f"{rev}{origin}{c}", committed=(rev + len(origin) + c) % 4 == 0)
        for rev in (1, 2, 3)
        for origin in ("a", "bb")
        for c in range(2)
    ]
    expected = max(pool, key=merge_order)
    for _ in range(50):
        sample = rng.sample(pool, k=len(pool))
        s = ConfigStore("z")
        for v in sample:
            s.apply(v)
        assert s.current(K) == expected


def test_versions_per_revision_are_bounded() -> None:
    s = ConfigStore("x")
    for i in range(MAX_VERSIONS_PER_REVISION):
        assert s.apply(version(1, f"o{i}", "c")).outcome is not Outcome.REFUSED
    refused = s.apply(version(1, "late", "c"))
    assert refused.outcome is Outcome.REFUSED and not refused.ack and refused.stored is None


def test_reader_with_a_higher_seen_revision_is_refused_not_served_older() -> None:
    s = store()
    s.publish(K, "x", now=1.0)
    exc = rejected(s.get, K, min_revision=2)
    assert exc.code is ErrorCode.UNAVAILABLE and "revision 1" in exc.message
    assert s.get(K, min_revision=1).revision == 1
    assert rejected(s.resolve, K, {}, None, min_revision=5).code is ErrorCode.UNAVAILABLE


def test_digests_name_revision_and_md5() -> None:
    s = store()
    s.publish(K, "x", now=1.0)
    (d,) = s.digests()
    assert (d.key, d.revision, d.md5, d.origin, d.committed) == (K, 1, content_md5("x"), "n1",
                                                                  False)  # fmt: skip
    assert re.fullmatch("[0-9a-f]{32}", d.md5)


def test_as_committed_is_replace_with_every_field_kept() -> None:
    """``ConfigEntry.as_committed`` builds the entry field by field (faster than
    ``dataclasses.replace``): every field must be carried over, so an entry whose every
    field differs from its default compares equal to ``replace(e, committed=True)``; a
    field added to ConfigEntry and forgotten there makes this fail."""
    import dataclasses

    from meshreg.configcenter.model import Change, GrayRelease, GrayRule

    e = ConfigEntry(
        key=ConfigKey("ns", "g", "d"),
        revision=7,
        origin="127.0.0.1:9",
        content="abc",
        type="json",
        md5=content_md5("abc"),
        modified=12.5,
        modified_by="alice",
        description="desc",
        tags=(("k", "v"),),
        deleted=True,
        change=Change.ROLLBACK,
        gray=GrayRelease("g", "text", content_md5("g"), GrayRule((("a", "b"),), frozenset())),
        committed=False,
        request_id="r" * 16,
    )
    names = {f.name for f in dataclasses.fields(ConfigEntry)}
    defaults = {f.name: f.default for f in dataclasses.fields(ConfigEntry)}
    assert all(getattr(e, n) != defaults[n] for n in names if n != "committed")
    assert e.as_committed() == dataclasses.replace(e, committed=True)
    assert e.as_committed().committed is True


def test_a_purged_data_id_is_not_taken_back_from_a_peer_that_has_not_purged_it() -> None:
    """review44's five-node test under load (1 run in 3, on 8cb245a too): two deletes,
    ``max_tombstones = 1``; a node purged A, got A's versions back a moment later from a
    peer that had not purged it yet (its newest tombstone then), and purged B instead:
    the nodes held different data ids.  A version at or below the purged revision of a
    data id purged here is refused; a new one above it is taken."""
    s, peer = store(max_tombstones=1), store(max_tombstones=1)
    a, b = ConfigKey("public", "g", "a"), ConfigKey("public", "g", "b")
    for key in (a, b):
        for version in (s.publish(key, "v1", now=1.0), s.delete(key, now=2.0)):
            peer.apply(version)
            s.commit(key, version.revision, version.origin, version.md5)  # acknowledged
    assert [e.key for e in s.prune(3.0)] == [a, a] and s.purged_through(a) == 2
    for version in peer.entries(a):  # the peer's round: what this node lacks
        assert s.apply(version).outcome is Outcome.REFUSED
    assert s.current(a) is None and s.current(b) is not None and s.tombstones_over == 0
    assert s.rejected["replica_purged"] == 2
    s.apply(dataclasses.replace(peer.entries(a)[-1], revision=3, deleted=False))  # re-created
    assert s.current(a) is not None and s.current(a).revision == 3
    # a tombstone no majority acknowledged, purged: another version of its revision may
    # be the one a majority acknowledged, and is taken (not refused as purged)
    t = store(max_tombstones=1)
    lost = t.apply(dataclasses.replace(peer.entries(b)[-1], origin="x")).outcome
    for version in peer.entries(a):  # a newer tombstone: b's is the one beyond the bound
        t.apply(dataclasses.replace(version, committed=True))
    assert lost is not Outcome.REFUSED and t.prune(3.0) and t.current(b) is None
    assert t.purged_through(b) == 0
    won = dataclasses.replace(peer.entries(b)[-1], deleted=False, content="v2",
                              md5=content_md5("v2"), committed=True)  # fmt: skip
    assert t.apply(won).outcome is not Outcome.REFUSED and t.current(b) == won
