"""The chunked sorted index behind the paged ``services`` read (core/sorted_keys)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.core import sorted_keys
from meshreg.core.sorted_keys import SortedKeys


def check_invariants(index: SortedKeys) -> None:
    chunks, maxes = index._chunks, index._maxes
    assert len(chunks) == len(maxes)
    assert all(chunk for chunk in chunks)
    flat = [k for chunk in chunks for k in chunk]
    assert flat == sorted(set(flat)) and len(flat) == len(index)
    assert maxes == [chunk[-1] for chunk in chunks]


ops = st.lists(st.tuples(st.booleans(), st.integers(0, 300)), max_size=400)


@settings(max_examples=60, deadline=None)
@given(ops, st.integers(-1, 301), st.booleans())
def test_matches_a_sorted_set(script: list[tuple[bool, int]], start: int, inclusive: bool) -> None:
    old_load = sorted_keys.LOAD
    sorted_keys.LOAD = 4  # small chunks: splits and joins happen in a short script
    try:
        index, model = SortedKeys(), set()
        for add, key in script:
            if add:
                assert index.add(key) == (key not in model)
                model.add(key)
            else:
                assert index.discard(key) == (key in model)
                model.discard(key)
            check_invariants(index)
        assert list(index) == sorted(model)
        expected = [k for k in sorted(model) if k > start or (inclusive and k == start)]
        assert list(index.after(start, inclusive)) == expected
        assert all((k in index) == (k in model) for k in range(-1, 302))
    finally:
        sorted_keys.LOAD = old_load


class Counted:
    """A key that counts its comparisons (a page must not compare against every key)."""

    compared = 0

    def __init__(self, value: int) -> None:
        self.value = value

    def __lt__(self, other: Any) -> bool:
        Counted.compared += 1
        return bool(self.value < other.value)

    def __gt__(self, other: Any) -> bool:
        Counted.compared += 1
        return bool(self.value > other.value)

    def __eq__(self, other: object) -> bool:
        Counted.compared += 1
        return isinstance(other, Counted) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]


def test_a_page_costs_log_n_plus_the_page_not_n() -> None:
    index = SortedKeys()
    for i in range(50_000):
        index.add(Counted(i * 2))
    Counted.compared = 0
    page = []
    for key in index.after(Counted(60_001)):
        page.append(key.value)
        if len(page) == 10:
            break
    assert page == list(range(60_002, 60_022, 2))
    assert Counted.compared < 100  # two binary searches: ~17 + ~10 comparisons
