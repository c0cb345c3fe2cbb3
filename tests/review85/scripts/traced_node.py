"""review85: a `meshreg node` with tracemalloc on; SIGUSR1 writes a snapshot to
$R85_TRACE_DIR/snap-N.pickle (compare two with compare_snaps.py).  Arguments: those of
`meshreg node`.  (A diagnosis tool: the node runs the same code, slower.)"""
from __future__ import annotations

import itertools
import os
import signal
import sys
import tracemalloc

tracemalloc.start(int(os.environ.get("R85_TRACE_FRAMES", "6")))
out = os.environ.get("R85_TRACE_DIR", "/tmp")
n = itertools.count()


def dump(*_: object) -> None:
    import gc
    gc.collect()
    tracemalloc.take_snapshot().dump(os.path.join(out, f"snap-{next(n)}.pickle"))


signal.signal(signal.SIGUSR1, dump)
from meshreg.cli import main  # noqa: E402

sys.exit(main(["node", *sys.argv[1:]]))
