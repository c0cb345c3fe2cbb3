"""Run the benchmark suite as a user would, for the smoke tests: one call, its JSON back."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_bench(
    results: Path, args: list[str], timeout: float, command: list[str] | None = None
) -> tuple[dict[str, Any], str]:
    """Run ``python -m bench ARGS`` (or ``command`` + ARGS) writing into ``results``;
    assert it succeeded and wrote one suite file; return that document and the output."""
    env = {
        **os.environ,
        "MESHREG_BENCH_RESULTS": str(results),
        "PYTHON": sys.executable,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }
    proc = subprocess.run(
        (command or [sys.executable, "-m", "bench"]) + args,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    suites = glob.glob(str(results / "suite-*.json"))
    assert len(suites) == 1, out[-3000:]
    with open(suites[0], encoding="utf-8") as fh:
        doc = json.load(fh)
    assert doc["failed"] == [], doc["failed"]
    return doc, out
