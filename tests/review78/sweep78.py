"""review78's sweep: review75's scenarios (r75scen.py, with review78's added there) run
with the real runtime and the real client session, and the "direct" refusals counted:
python tests/review78/sweep78.py NAME FIRST COUNT

Each refusal (core/distro ``_refuse_direct`` raising) is recorded with the node, the
time, its (up, total) and whether the probe counted the node cut off then (in a
partition or deaf: ``rs.minority``); a refusal by a node the probe does not count cut
off is "spurious" (a momentary minority: a lagging view, a restart, peers down)."""

import logging
import os
import sys
import time

logging.disable(logging.WARNING)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "review75"))
sys.path.insert(0, HERE)

from r75scen import message, run  # noqa: E402
from r78lib import Refusals  # noqa: E402

name, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fails = 0
total_ref = total_spur = 0
with Refusals() as refs:
    for seed in range(first, first + count):
        refs.reset()
        t = time.time()
        try:
            rs, problems = run(name, seed)
        except Exception as exc:  # a harness crash counts as a failure to look at
            import traceback

            print(f"{name} seed {seed}: CRASH {exc!r}\n{traceback.format_exc()}", flush=True)
            fails += 1
            continue
        took = time.time() - t
        spur = refs.spurious()
        total_ref += len(refs.log)
        total_spur += len(spur)
        extra = f" | direct_refused {len(refs.log)} spurious {len(spur)} {spur[:4]}"
        if problems:
            fails += 1
            print(f"FAIL ({took:.1f}s) " + message(rs, name, seed, problems) + extra, flush=True)
        else:
            print(f"ok ({took:.1f}s) {rs.summary()}{extra}", flush=True)
print(f"== {name}: {count - fails}/{count} passed (seeds {first}..{first + count - 1}); "
      f"direct refusals {total_ref}, by nodes not cut off {total_spur}")  # fmt: skip
