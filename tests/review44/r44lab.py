"""review44: review42's lab (tests/review42/r42lab.py, itself review38's CasLab on
tests/chaos/netlab.py) with this review's names and ports: namespaces ``r44<pid>x<n>-*``,
the nodes on port 31400 inside them, and an interactive client (r44_repl.py) that also
does rollback and the gray release writes.

Every node is a real ``python -m meshreg node`` process in its own network namespace;
the clients are the public ``meshreg.Client``.  Root only (skip_reason()).

A node's wall clock is set off with Lab42.SKEWED: ``python -c`` patches
``time.time``/``time.time_ns`` by the node's ``skew`` (seconds, negative: behind) before
``meshreg.cli.main`` runs.  meshreg has no option of its own for it.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "review42"))
sys.path.insert(0, str(HERE.parent / "review38"))
sys.path.insert(0, str(HERE.parent / "chaos"))

import r42lab  # noqa: E402

# (the reviewer's lab set netlab.PREFIX and r38lab.PORT/r42lab.PORT here, for its own
# runs beside other reviewers': in the suite that changed the port of every later lab in
# the worker, whose tests had imported PORT 7800, and review42's iptables rule missed its
# node: CI failed twice.  Each lab has its own namespaces: the shared defaults are fine.)
PORT = r42lab.PORT

from r38lab import load  # noqa: E402
from r42lab import Lab42, Repl, keep_workdir, skip_reason, wait  # noqa: E402

__all__ = [
    "HERE",
    "PORT",
    "Lab44",
    "Repl",
    "keep_workdir",
    "load",
    "skew_params",
    "skip_reason",
    "wait",
]


def skew_params(skew: float, name: str) -> dict[str, object]:
    """``pytest.mark.parametrize`` arguments for a test run with a node's clock ``skew``
    off (id ``name``), and with every clock right (``control-clocks-right``) when
    MESHREG_R44_CONTROLS=1.  The controls showed, when the tests were written, that each
    passes with the clocks right and fails on the skew alone; in the suite they were 70 s
    of its one-at-a-time group (the suite's critical path, 19:38 of its 20 min on 2 cores)
    and repeat what the suite's other config tests check."""
    import os

    controls = os.environ.get("MESHREG_R44_CONTROLS") == "1"
    skews, ids = [skew], [name]
    if controls:
        skews.append(0.0)
        ids.append("control-clocks-right")
    return {"argnames": "skew", "argvalues": skews, "ids": ids}


class Lab44(Lab42):
    # A node whose wall clock can be stepped while it runs: ``time.time``/``time_ns``
    # return the real clock plus the number of seconds in a file (``clock_file(j)``), read
    # at each call (the test writes it: an NTP step forward or back)
    STEPPED = (
        "import sys, time\n"
        "_t, _ns, _f = time.time, time.time_ns, sys.argv.pop(1)\n"
        "def _off():\n"
        "    try:\n"
        "        return float(open(_f).read() or 0)\n"
        "    except (OSError, ValueError):\n"
        "        return 0.0\n"
        "time.time = lambda: _t() + _off()\n"
        "time.time_ns = lambda: _ns() + int(_off() * 1e9)\n"
        "from meshreg.cli import main\n"
        "sys.argv[0] = 'meshreg'\n"
        "sys.exit(main())\n"
    )

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.stepped: set[int] = set()  # nodes started with STEPPED

    def clock_file(self, j: int) -> Path:
        return self.workdir / f"clock-n{j + 1}"

    def step_clock(self, j: int, offset: float) -> None:
        self.clock_file(j).write_text(repr(offset))
        self.ev(f"n{j + 1} wall clock now {offset:+g} s")

    def start_node(self, j: int) -> None:
        if j not in self.stepped:
            super().start_node(j)
            return
        self.skew[j] = 1.0  # (any: makes Lab42 use ``SKEWED``, replaced below)
        saved = Lab42.SKEWED
        try:
            Lab42.SKEWED = self.STEPPED
            orig = self.skew
            self.skew = {**orig, j: str(self.clock_file(j))}  # type: ignore[dict-item]
            super().start_node(j)
        finally:
            Lab42.SKEWED = saved
            self.skew = {k: v for k, v in orig.items() if k != j}

    def repl44(
        self, j: int, servers: list[int], data_id: str, labels: str = "", timeout: float = 8.0
    ) -> Repl:
        """r44_repl.py in node j's namespace (labels: ``k=v,k2=v2`` for gray reads)."""
        argv = [
            sys.executable, str(HERE / "r44_repl.py"), "--data-id", data_id,
            "--servers", ",".join(self.addr(i) for i in servers),
        ]  # fmt: skip
        if labels:
            argv += ["--labels", labels]
        argv += ["--timeout", str(timeout)]
        return Repl(self.lab.spawn(j, f"repl44-n{j + 1}-{len(self.lab.procs)}", argv, pipe=True))

    def link(self, j: int, up: bool) -> None:
        self.lab.link(j, up)
        self.ev(f"n{j + 1} link {'up' if up else 'down'}")


def undrop(lab: Lab44, j: int, rule: list[str]) -> None:
    """Remove an iptables rule added with ``lab.drop(j, rule)``."""
    from netlab import iptables_command, run

    ipt = iptables_command()
    assert ipt is not None
    run("ip", "netns", "exec", lab.lab.namespaces[j], ipt, "-D", *rule)
