"""Shared helpers of review54 (a new user's walk through the docs, real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import meshreg_cmd  # noqa: E402


def cli(
    *args: str, cwd: Path | None = None, timeout: float = 30.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``meshreg ARGS`` as a user runs it: its own process, its own exit status."""
    full_env = {**os.environ, **(env or {})}
    for name in ("MESHREG_SERVERS", "MESHREG_KEY", "MESHREG_SERVER_KEY"):
        if env is None or name not in env:
            full_env.pop(name, None)
    return subprocess.run(meshreg_cmd(*args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)  # fmt: skip
