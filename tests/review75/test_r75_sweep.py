"""review75's seeded sweep over the real client session (r75sim.py, r75scen.py): a few
guard seeds per scenario that passed (they keep passing: the harness and the invariants
of r75sim's docstring), and ``replay`` for any seed:

    MESHREG_R75_SCENARIO=partition-short MESHREG_R75_SEED=7 \\
        pytest -n 0 -p no:cacheprovider -s tests/review75/test_r75_sweep.py -k replay

(``MESHREG_SIM_TRACE=/tmp/t.txt`` writes the trace).  The long sweeps are run with
``python tests/review75/sweep.py NAME FIRST COUNT`` (REPORT.md has the counts)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from r75scen import message, run  # noqa: E402

GUARDS = [("pause-short", 1), ("stall-default", 3), ("restart-short", 2), ("race-short", 1)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("name", "seed"), GUARDS, ids=[f"{n}-{s}" for n, s in GUARDS])
def test_guard_seed_holds_every_invariant(name: str, seed: int) -> None:
    rs, problems = run(name, seed)
    print(rs.summary())
    assert not problems, message(rs, name, seed, problems)


@pytest.mark.timeout(600)
@pytest.mark.skipif("MESHREG_R75_SEED" not in os.environ, reason="set MESHREG_R75_SEED")
def test_replay() -> None:
    name = os.environ.get("MESHREG_R75_SCENARIO", "random-short")
    seed = int(os.environ["MESHREG_R75_SEED"])
    rs, problems = run(name, seed)
    print(rs.summary())
    print("resurrections inside the documented window:", rs.window_backs())
    assert not problems, message(rs, name, seed, problems)
