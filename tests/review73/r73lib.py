"""Helpers for review73's tests: review72's (tests/review72/r72lib.py), re-exported."""

from __future__ import annotations

import os
import sys

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "review72")
)
from r72lib import *  # noqa: E402, F403
from r72lib import __all__ as __all__  # noqa: E402
