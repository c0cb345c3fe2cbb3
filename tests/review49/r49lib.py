"""review49 helpers: review48's (review36's Node/running, recorders, client)."""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "review36"))
sys.path.insert(0, os.path.join(HERE, "..", "review48"))
from r48lib import (  # noqa: E402,F401
    ConfigRecorder,
    Recorder,
    client,
    holds_for,
    new_nodes,
    restore_lost_cluster,
    running,
    wait_ready,
    wait_until,
)
