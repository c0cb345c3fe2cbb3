"""Shared by the review70 tests: the harness on the path, and a watched service."""

from __future__ import annotations

import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "client"))
sys.path.insert(0, os.path.join(HERE, ".."))

from session_harness import SVC, Handle, Harness, snapshot  # noqa: E402

from meshreg.client.actions import Complete, WatchTopic  # noqa: E402
from meshreg.client.commands import Subscribe  # noqa: E402
from meshreg.model import Instance  # noqa: E402


def ips(listing: list[Instance]) -> list[str]:
    return [i.ip for i in listing]


def watching(h: Harness, *start: str, epoch: int = 1, revision: int = 5) -> list[Any]:
    """Subscribe a listener to SVC and answer its first pull (as
    tests/client/test_client_session_watch.py does); returns what it was given."""
    calls: list[list[Instance]] = []
    handle = Handle()
    h.do(Subscribe(SVC, calls.append, 3.0, handle))
    assert WatchTopic(SVC) in h.actions
    (pull,) = h.unanswered("instances")
    h.reply(pull, snapshot(epoch, revision, *start))
    done = h.outcome(handle)
    assert isinstance(done, Complete) and ips(done.result) == list(start)
    h.advance(0)  # a client that only watches pings its server: it answers
    h.answer_all("ping", {"epoch": epoch, "version": "1", "address": h.connected})
    return h.listener_calls()
