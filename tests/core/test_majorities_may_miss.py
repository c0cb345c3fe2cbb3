"""core/membership ``majorities_may_miss``: can a majority of one peer list and one of
another share no member (review25 F4: two config majorities, one revision twice)?"""

from __future__ import annotations

from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.core.membership import majorities_may_miss


def _brute(a: frozenset[str], b: frozenset[str]) -> bool:
    qa = [frozenset(c) for c in combinations(sorted(a), len(a) // 2 + 1)]
    qb = [frozenset(c) for c in combinations(sorted(b), len(b) // 2 + 1)]
    return any(not (x & y) for x in qa for y in qb)


NAMES = "ABCDEFGH"


@settings(max_examples=300, deadline=None)
@given(
    st.sets(st.sampled_from(NAMES), min_size=1, max_size=7),
    st.sets(st.sampled_from(NAMES), min_size=1, max_size=7),
)
def test_with_every_id_known_it_is_exact(a: set[str], b: set[str]) -> None:
    fa, fb = frozenset(a), frozenset(b)
    assert majorities_may_miss(len(fa), fa, len(fb), fb) == _brute(fa, fb)


def test_the_cases_that_matter() -> None:
    three, five = frozenset("ABC"), frozenset("ABCDE")
    assert majorities_may_miss(5, five, 3, three)  # 3 -> 5 at once: {A,D,E} and {B,C}
    assert not majorities_may_miss(4, frozenset("ABCD"), 3, three)  # one at a time
    assert not majorities_may_miss(6, frozenset("ABCDEF"), 4, frozenset("ABCD"))
    assert majorities_may_miss(3, frozenset("ABD"), 3, three)  # one replaced in one step
    assert not majorities_may_miss(3, three, 3, three)


def test_members_not_heard_yet_are_taken_as_shared() -> None:
    """A cluster starting: each has heard some of the same 3-member list."""
    assert not majorities_may_miss(3, frozenset("AB"), 3, frozenset("B"))
    # ... but a list two longer is apart whatever the ids
    assert majorities_may_miss(5, frozenset("A"), 3, frozenset("B"))
