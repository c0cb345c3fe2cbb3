# review14b: shift this process's wall clock (time.time/time_ns) by MESHREG_R14B_SKEW seconds,
# modelling a machine whose NTP is off (monotonic unchanged).
import os
import time

_skew = float(os.environ.get("MESHREG_R14B_SKEW", "0") or 0)
if _skew:
    _real_time, _real_ns = time.time, time.time_ns
    time.time = lambda: _real_time() + _skew
    time.time_ns = lambda: _real_ns() + int(_skew * 1e9)
