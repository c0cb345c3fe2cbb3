"""Run seeds of review75's scenarios: python tests/review75/sweep.py NAME FIRST COUNT"""

import logging
import os
import sys
import time

logging.disable(logging.WARNING)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from r75scen import message, run  # noqa: E402

name, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fails = 0
for seed in range(first, first + count):
    t = time.time()
    try:
        rs, problems = run(name, seed)
    except Exception as exc:  # a harness crash counts as a failure to look at
        import traceback

        print(f"{name} seed {seed}: CRASH {exc!r}\n{traceback.format_exc()}", flush=True)
        fails += 1
        continue
    took = time.time() - t
    if problems:
        fails += 1
        print(f"FAIL ({took:.1f}s) " + message(rs, name, seed, problems), flush=True)
    else:
        print(f"ok ({took:.1f}s) {rs.summary()} windows={rs.window_backs()[:3]}", flush=True)
print(f"== {name}: {count - fails}/{count} passed (seeds {first}..{first + count - 1})")
