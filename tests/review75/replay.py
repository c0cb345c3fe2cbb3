"""python tests/review75/replay.py NAME SEED [grep words...]: run with the trace, print
the problems and the trace lines holding every word of one of the greps (comma: and)."""

import logging
import os
import sys

logging.disable(logging.WARNING)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import r75sim  # noqa: E402

r75sim.TRACE_FILE = "x"
import r75scen  # noqa: E402

name, seed = sys.argv[1], int(sys.argv[2])
rs, problems = r75scen.run(name, seed)
print(rs.summary())
for p in problems:
    print("PROBLEM", p)
for p in rs.providers:
    print(p.name, p.client.sid, p.results)
    for line in p.client.logs[:30]:
        print("   ", line)
pats = [w.split(",") for w in sys.argv[3:]]
for line in rs.net.trace or []:
    if any(all(w in line for w in words) for words in pats):
        print(line)
