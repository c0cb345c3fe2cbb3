"""A wall clock stepped while the node runs is said, with what to do (review44 F3).

A node reads the wall clock once, at its start: its stamps, its clock checks and its
configuration center run on it from then on (a step would move every deadline at once).
A node that booted with a wrong clock and was then fixed by NTP kept the wrong one, and
counted out for it, it refused reads until someone thought of restarting it: nothing
said so.  Now the runtime looks at the wall clock every ``WALL_CHECK_INTERVAL`` and,
once it has moved by a second or more, logs a warning saying to restart the node (again
if the step changes, else every ``WALL_STEP_REPEAT``) and shows it in ``stats``."""

from __future__ import annotations

import logging

import pytest
from helpers import free_port_pair

from meshreg.config import NodeConfig
from meshreg.runtime.node import WALL_CHECK_INTERVAL, WALL_STEP_REPEAT, NodeRuntime


def test_a_wall_clock_step_is_said_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    clock = [1000.0]
    rt = NodeRuntime(NodeConfig(host="127.0.0.1", port=free_port_pair(4)), clock=lambda: clock[0])
    start_wall = clock[0] + rt._wall_offset
    step = [0.0]
    rt._wall_source = lambda: clock[0] + rt._wall_offset + step[0]  # the machine's clock
    rt.bind()

    def turns(seconds: float) -> list[str]:
        caplog.clear()
        for _ in range(int(seconds / 0.5)):
            clock[0] += 0.5
            rt.prepare()
        return [r.getMessage() for r in caplog.records if "wall clock moved" in r.getMessage()]

    try:
        with caplog.at_level(logging.WARNING, logger="meshreg.node"):
            assert turns(2 * WALL_CHECK_INTERVAL) == [] and rt.wall_step == 0.0
            step[0] = 0.4  # a slew's worth: nothing to say
            assert turns(2 * WALL_CHECK_INTERVAL) == []
            step[0] = -60.0  # NTP stepped it back a minute
            said = turns(2 * WALL_CHECK_INTERVAL)
            assert len(said) == 1 and "-60.0s" in said[0] and "restart it" in said[0], said
            assert rt.wall_step == -60.0 and rt._runtime_stats()["wall_clock_step"] == -60.0
            assert turns(4 * WALL_CHECK_INTERVAL) == []  # said once, not every look
            assert turns(WALL_STEP_REPEAT) != []  # still there 10 min later: said again
            # the node's own clock did not move: its stamps go on from the start's
            assert clock[0] + rt._wall_offset - start_wall == pytest.approx(clock[0] - 1000.0)
    finally:
        rt.close()
