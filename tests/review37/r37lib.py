"""review37 helpers: keyed nodes (CURVE + ACL) from review23's helpers; tenant ACL."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "review23"))
from helpers import HOST, NodeProcess, RawDealer, holds_for, raw_request, wait_until  # noqa: E402,F401
from r23lib import keyed_node, make_keys, reply_text, rss_mb  # noqa: E402,F401

# two tenants, each confined to its own namespace; ops reads everything (stats)
TENANTS_ACL = """
[[client]]
name = "tenantA"
key_file = "tenantA.pub"
allow = [{ namespace = "nsA", group = "*", service = "*", access = "admin" }]
[[client]]
name = "tenantB"
key_file = "tenantB.pub"
allow = [{ namespace = "nsB", group = "*", service = "*", access = "admin" }]
[[client]]
name = "ops"
key_file = "ops.pub"
allow = [{ namespace = "*", group = "*", service = "*", access = "admin" }]
"""
