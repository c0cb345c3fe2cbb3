"""A peer's clock samples keep their least as they come and go (``Peer.sample_lead``):
every beacon of any peer asks every peer's least (``_clock_lead``), so it is kept, not
recomputed; it must be the least of the samples kept, whatever the order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.core.membership import Peer

steps = st.lists(
    st.tuples(st.floats(0.0, 3.0), st.sampled_from([-2.0, -0.5, 0.0, 0.1, 0.5, 2.0, 9.0])),
    min_size=1,
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(1, 16), st.floats(0.5, 20.0))
def test_the_least_kept_is_the_least_of_the_samples(
    beats: list[tuple[float, float]], keep: int, window: float
) -> None:
    peer = Peer("127.0.0.1:7802")
    now = 0.0
    for gap, lead in beats:
        now += gap
        peer.sample_lead(now, lead, keep, window)
        samples = peer.lead_samples
        assert samples and len(samples) <= keep
        assert all(now - at <= window for at, _ in samples)
        assert peer.least_lead() == min(lead for _, lead in samples)
