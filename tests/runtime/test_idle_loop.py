"""An idle node's loop sleeps: ``prepare`` returns a poll timeout above zero when nothing
is due (a lone node's configuration center has no sync round to wake it for: it used to
ask for a turn at once, every turn, so an idle node spun at ~15% of a core)."""

from __future__ import annotations

from helpers import free_port_pair

from meshreg.config import NodeConfig
from meshreg.runtime.node import NodeRuntime


def test_an_idle_lone_node_sleeps_between_turns() -> None:
    clock = [1000.0]
    rt = NodeRuntime(NodeConfig(host="127.0.0.1", port=free_port_pair(4)), clock=lambda: clock[0])
    rt.bind()
    try:
        timeouts = []
        for _ in range(40):  # 20 s: past the config center's sync interval (5 s)
            clock[0] += 0.5
            timeouts.append(rt.prepare())
            rt.prepare()  # a sweep may take a second turn: the turn after it must not
        assert sum(1 for t in timeouts if t == 0.0) <= 4, timeouts
    finally:
        rt.close()
