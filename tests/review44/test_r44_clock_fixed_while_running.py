"""review44 F3: a node whose wall clock was off when it started keeps that offset for as
long as it runs.  When NTP then steps the machine's clock right (the remedy the node's own
error and the docs give), nothing changes: a node counted out for a clock 60 s ahead
refuses reads for ever ("serves no reads until it is fixed (NTP)"), until someone
restarts it; a node within 30 s keeps stamping its writes with the wrong clock (review44
F1/F2, review42 F2).

docs/DISTRO.md "Clock skew": a node apart from a majority "counts itself out of the
members ..., refuses `instances` and `services` with UNAVAILABLE ('this node's clock is off
the other nodes'...')"; "back together below 15 s".  The refusal (core/distro.py
``handle``): "this node's clock is off the other nodes' by more than 30 s: it serves no
reads until it is fixed (NTP); ask another node".  README: "keep clocks in sync".  Nothing
says a node must be restarted after its clock is fixed.

Why: runtime/node.py reads the wall clock once, at start (``wall_offset = time.time() -
now``, node.py:380-381); every stamp and every beacon's ``wall`` afterwards is the
monotonic clock plus that offset.  A step of the machine's clock never reaches it.

The node's clock: ``time.time``/``time_ns`` patched to add the seconds in a file, read at
every call (Lab44.STEPPED): the test writes the file, the process sees a stepped clock.
Three nodes; n3 starts 60 s ahead; once it says it is off (reads refused), its clock is
stepped back to right.  Expected by the reviewer: n3 serves reads again within 20 s.
Fixed as documented instead (a running node never takes a step: every deadline would
move at once): n3 logs that its wall clock moved and to restart it, its refusal says
"fixed (NTP) and the node restarted", and once restarted it serves reads.  Control: the
same step while n1..n3 all started right and n3 is stepped +60 s while running: nothing
changes either (no refusal): a running node ignores steps both ways, which also means a
config stamp never jumps (what held).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from r44lab import Lab44, keep_workdir, skip_reason, wait

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]


def _probe(lab: Lab44, j: int) -> str:
    """One services read and one config read through node j only: 'ok' or the error."""
    script = (
        "from meshreg import Client\n"
        f"c = Client([{lab.addr(j)!r}], timeout=2, sessions=False)\n"
        "try:\n"
        "    c.config_get('r44-step')\n"
        "    c.services()\n"
        "    print('ok')\n"
        "except Exception as e:\n"
        "    print(type(e).__name__ + ': ' + str(e)[:400].replace(chr(10), ' '))\n"
    )
    p = lab.lab.spawn(j, f"probe-n{j + 1}-{len(lab.lab.procs)}", [sys.executable, "-c", script],
                      pipe=True)  # fmt: skip
    from netlab import read_line

    line = read_line(p, 10) or "no answer"
    p.kill()
    return line


@pytest.mark.timeout(150)
def test_a_node_started_with_its_clock_off_recovers_once_the_clock_is_fixed(
    tmp_path: Path,
) -> None:
    lab = Lab44(tmp_path / "lab", n=3, peer_timeout=1.0)
    lab.stepped = {2}
    lab.step_clock(2, 60.0)
    ok = False
    try:
        lab.up_nodes(range(2), members=2)
        lab.start_node(2)
        off = wait(lambda: "clock is off" in (a := _probe(lab, 2)) and a, 30, step=0.5)
        lab.ev(f"n3 (+60 s) answers: {off}")
        assert off, f"setup: n3 never counted itself out: {_probe(lab, 2)}"
        lab.step_clock(2, 0.0)  # NTP steps it right
        # the fix (docs/DISTRO.md "Clock skew"): the node keeps the clock it read at its
        # start, and says so: a warning to restart it, within WALL_CHECK_INTERVAL (5 s)
        node = lab.nodes[2]
        assert node is not None
        said = wait(lambda: "restart it" in node.log_tail(200) and node.log_tail(200), 20)
        lab.ev(f"n3 said: {[x for x in (said or '').splitlines() if 'wall clock' in x][-1:]}")
        assert said and "the wall clock moved by -60." in said, node.log_tail(40)
        assert "and the node restarted" in _probe(lab, 2)  # the refusal says what to do
        lab.kill(2)
        lab.start_node(2)  # the operator restarts it, as the warning says
        back = wait(lambda: _probe(lab, 2) == "ok", 30, step=0.5)
        lab.ev(f"n3 after its restart: {'serves reads' if back else _probe(lab, 2)}")
        print("\n".join(map(str, lab.events)))
        assert back, f"n3 restarted with its clock right still refuses: {_probe(lab, 2)}"
        ok = True
    finally:
        if not ok:
            keep_workdir(tmp_path / "lab", "/tmp/r44/failed")
        lab.close()


@pytest.mark.timeout(150)
def test_a_running_node_ignores_a_step_of_its_clock(tmp_path: Path) -> None:
    """What held: a step of +60 s (then -60 s) of a running node's clock changes nothing
    (no 'clock off', writes through it acknowledged and stamped with the start's clock)."""
    lab = Lab44(tmp_path / "lab", n=3, peer_timeout=1.0)
    lab.stepped = {2}
    lab.step_clock(2, 0.0)
    ok = False
    try:
        lab.up_nodes(range(3))
        w = lab.repl44(2, [2], "r44-step")
        assert w("publish a")["ok"]
        for off in (60.0, -60.0, 0.0):
            lab.step_clock(2, off)
            assert not wait(lambda: _probe(lab, 2) != "ok", 4, step=0.5), lab.events
            got = w("publish b")
            assert got.get("ok"), (off, got)
            assert w("delete").get("ok")
        ok = True
    finally:
        if not ok:
            keep_workdir(tmp_path / "lab", "/tmp/r44/failed")
        lab.close()
