"""The config center's quota on content held (review14b): a node keeps every kept version's
content in memory as well as on disk, and one client publishing 1 MiB contents grew a
node by 681 MB unrefused.  ``max_total_bytes`` (``[config] max_total_bytes``, 256 MiB by
default) refuses a local write whose new version would pass it; a deletion always goes
through, and versions merged from peers are never refused for it (convergence).  Each
kept version counts its content plus ``VERSION_BYTES`` (review85 F1: a node's memory for
a version is ~1 KB whatever its content, so counting content alone let small versions
grow a node without bound under the quota)."""

from __future__ import annotations

import pytest

from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import VERSION_BYTES, ConfigKey, ConfigLimits, ConfigRejected
from meshreg.errors import ErrorCode

KEY = ConfigKey("public", "DEFAULT_GROUP", "big.txt")
TOTAL = 3 * (300 + VERSION_BYTES) + (100 + VERSION_BYTES)  # 3 versions of 300, one of 100


def _store(total: int = TOTAL) -> ConfigStore:
    return ConfigStore("n0", limits=ConfigLimits(max_content_bytes=300, max_total_bytes=total))


def test_a_write_past_the_total_is_refused_and_changes_nothing() -> None:
    s = _store()
    for i in range(3):
        s.publish(KEY, "x" * 299 + str(i), now=float(i))  # 300 each (+ VERSION_BYTES)
    before = (s.held_bytes, s.current(KEY))
    with pytest.raises(ConfigRejected) as refused:
        s.publish(KEY, "y" * 200, now=5.0)
    assert refused.value.code is ErrorCode.RESOURCE_EXHAUSTED
    assert "max_total_bytes" in refused.value.message and "big.txt" in refused.value.message
    assert (s.held_bytes, s.current(KEY)) == before
    assert s.rejected["max_total_bytes"] == 1
    s.publish(KEY, "z" * 100, now=6.0)  # what fits still goes: the total exactly
    assert s.held_bytes == TOTAL and s.content_bytes == 1000


def test_versions_of_one_character_count_what_a_node_holds_for_them() -> None:
    """review85 F1: 300 data ids x 80 versions of one character fitted a 64 KiB quota
    (24,000 characters) and grew the node by ~20 MB; now each counts VERSION_BYTES."""
    s = ConfigStore("n0", limits=ConfigLimits(max_content_bytes=1024, max_total_bytes=64 << 10))
    made = 0
    with pytest.raises(ConfigRejected) as refused:
        for i in range(24_000):
            s.publish(ConfigKey("public", "DEFAULT_GROUP", f"d{i % 300}"), str(i % 10),
                      now=float(i))  # fmt: skip
            made += 1
    assert made == (64 << 10) // (1 + VERSION_BYTES)  # 63 versions of 1 character
    assert refused.value.reason == "max_total_bytes"
    assert str(VERSION_BYTES) in refused.value.message


def test_a_delete_always_goes_and_a_merged_version_is_never_refused() -> None:
    s = _store()
    for i in range(3):
        s.publish(KEY, "x" * 299 + str(i), now=float(i))
    assert s.delete(KEY, now=4.0).deleted  # no content: always admitted
    other = _store(total=10 * TOTAL)
    for i in range(6):  # a peer (a larger quota) made these: merged here all the same
        entry = other.publish(ConfigKey("public", "DEFAULT_GROUP", f"p{i}"), "q" * 300,
                              now=float(i))  # fmt: skip
        s.apply(entry)
    assert s.held_bytes > TOTAL


def test_the_total_cannot_be_below_one_content() -> None:
    with pytest.raises(ValueError, match="max_total_bytes"):
        ConfigLimits(max_content_bytes=300, max_total_bytes=300 + VERSION_BYTES - 1)
    ConfigLimits(max_content_bytes=300, max_total_bytes=300 + VERSION_BYTES)  # one version


def test_a_history_page_stops_at_its_byte_bound_and_the_cursor_gives_the_rest() -> None:
    """review14a F1: a page of 200 versions at the content cap was 200 MiB to build and
    hold; a page now stops once it holds ``HISTORY_PAGE_BYTES`` of content."""
    from meshreg.configcenter import core

    s = ConfigStore("n0", limits=ConfigLimits(max_content_bytes=1 << 20, max_total_bytes=1 << 30))
    for i in range(12):
        s.publish(KEY, f"{i:02d}" + "x" * ((1 << 20) - 2), now=float(i))
    page = s.history(KEY, page_size=200)
    held = sum(len(e.content) for e in page.items)
    assert 0 < len(page.items) < 12 and page.next_cursor is not None
    assert held <= core.HISTORY_PAGE_BYTES + (1 << 20)
    seen = [e.revision for e in page.items]
    while page.next_cursor is not None:
        page = s.history(KEY, page_size=200, before=page.next_cursor)
        seen += [e.revision for e in page.items]
    assert seen == list(range(12, 0, -1))  # every revision once, newest first
