"""review43: small helpers over review42's lab (tests/review42/r42lab.py: nodes in network
namespaces, kill with wipe, cuts, impair).  Root only."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "review42"))
sys.path.insert(0, str(HERE.parent / "review38"))
sys.path.insert(0, str(HERE.parent / "chaos"))

from r42lab import Lab42, keep_workdir, skip_reason, wait  # noqa: E402

__all__ = ["Lab42", "keep_workdir", "skip_reason", "wait", "first_answer", "data_id_owned"]


def first_answer(repl: Any, timeout: float) -> Any:
    """The first ``get`` answer that is not "not ready" (a value or absent), else None."""
    return wait(
        lambda: (lambda r: r if r.get("ok") or r.get("absent") else None)(repl("get")),
        timeout,
        step=0.05,
    )


def data_id_owned(lab: Lab42, j: int, prefix: str) -> str:
    return next(f"{prefix}-{i}" for i in range(500) if lab.owner(f"{prefix}-{i}") == j)
