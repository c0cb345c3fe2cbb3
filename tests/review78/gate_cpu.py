"""review78: CPU per beat of a node's request loop with the fast-beat gate open (not cut
off) and closed (``DistroNode._cut_off``: it sees no majority), on the same queued beats
(bench/beatloop.py's method): python tests/review78/gate_cpu.py [BEATS] [REPEAT]"""

import sys
import time

import zmq

from bench.beatloop import _cpu_per_message, _fields
from bench.common import HOST, free_port_block
from meshreg.config import NodeConfig
from meshreg.runtime.node import NodeRuntime
from meshreg.wire.messages import decode_body, parse_message
from meshreg.wire.replies import encode_request

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 4
rt = NodeRuntime(NodeConfig(host=HOST, port=free_port_block(4)))
rt.bind()
ctx = zmq.Context()
try:
    router = rt._router
    now = time.monotonic()
    for i in range(n):
        rt.core.handle(
            parse_message(decode_body(encode_request("register", i + 1, **_fields(i)))), now
        )
    rt.core.take_effects()
    bodies = [encode_request("beat", i + 1, **_fields(i)) for i in range(n)]
    router.setsockopt(zmq.RCVHWM, 0)
    router.setsockopt(zmq.SNDHWM, 0)
    out = {}
    for cut in (False, True, False, True):
        rt.core._cut_off = cut
        rt.core._gate_fast_beats()
        runs = []
        for _ in range(repeat):
            target = rt.core.stats.beats + n
            runs.append(
                _cpu_per_message(
                    ctx,
                    rt.config.port,
                    bodies,
                    lambda: rt._drain_requests(router),
                    lambda t=target: rt.core.stats.beats >= t,
                )
            )
        out.setdefault(cut, []).extend(runs)
    for cut, runs in out.items():
        print(
            f"cut_off={cut}: gate={'closed' if cut else 'open'} best {min(runs):.2f} us/beat "
            f"runs {[round(r, 2) for r in runs]}"
        )
    print(f"ratio closed/open: {min(out[True]) / min(out[False]):.2f}")
finally:
    ctx.term() if False else None
    rt.close()
