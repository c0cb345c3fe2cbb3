"""review51 F4: an outage was logged once per watched service, not once per kind.

The client's rule (meshreg/client/session.py, "Logging"): problems are logged at most once
per kind and server per LOG_INTERVAL, and what concerns many watched services at once is
one line naming how many (``_note``).  An outage of the registry concerns every watched
service at once, yet ``_say_stale`` wrote one WARNING per service ("svc: no meshreg server
answers (...the whole error, naming the servers...); serving the last known list") and
the return one INFO per service ("svc: live data again from ..."): a consumer watching
200 services wrote 400 lines per outage, and again at every flap of its node.

Fixed (f4logs): both are said through ``_note``: the first at once, the services after it
in the same LOG_INTERVAL (10 s) in one line when it ends, "199 watched services (e.g.
svc1): live data again from ...".  Every service is still counted, once each way.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from r51lib import SHORT, freeze, new_nodes, running, thaw, wait_until  # noqa: E402

from meshreg.client import Client  # noqa: E402

SERVICES = 200


STALE, AGAIN = "no meshreg server answers", "live data again"


def said(msgs: list[str], text: str) -> list[str]:
    return [m for m in msgs if text in m]


def named(msgs: list[str]) -> int:
    """How many services ``msgs`` name: "N watched services (e.g. ...): ..." names N."""
    heads = [m.split(" watched services (e.g. ", 1) for m in msgs]
    return sum(int(h[0]) if len(h) == 2 and h[0].isdigit() else 1 for h in heads)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.msgs: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.msgs.append(record.getMessage())


@pytest.mark.timeout(180)
def test_an_outage_is_a_few_lines_not_two_per_watched_service() -> None:
    lines = Lines()
    logger = logging.getLogger("meshreg.client")
    logger.addHandler(lines)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp, running(new_nodes(1, tmp, SHORT)) as nodes:
        node = nodes[0]
        c = Client([node.address], handle_sigterm=False, resync_interval=2.0)
        try:
            for i in range(SERVICES):
                c.subscribe(f"svc{i}", lambda xs: None)
            lines.msgs.clear()
            freeze(node)
            core = c._agent.core
            wait_until(lambda: core.offline, 20, 0.1, "the client offline")
            # every watch's pull or resync fails while offline: up to 8 s (4 resyncs) for
            # each to be said, and a LOG_INTERVAL for those said after the first
            end = time.monotonic() + 20
            while time.monotonic() < end and named(said(lines.msgs, STALE)) < SERVICES:
                time.sleep(0.2)
            stale = said(lines.msgs, STALE)
            thaw(node)
            wait_until(lambda: not core.offline, 20, 0.1, "the client back online")
            end = time.monotonic() + 15  # the stale views are pulled again, then summed up
            while time.monotonic() < end and named(said(lines.msgs, AGAIN)) < SERVICES:
                time.sleep(0.2)
            again = said(lines.msgs, AGAIN)
            total = len(lines.msgs)
            print(
                f"{len(stale)} 'no meshreg server answers' lines, {len(again)} 'live data "
                f"again' lines, {total} lines in all, for {SERVICES} watched services"
            )
            assert len(stale) + len(again) <= 10, (
                f"one outage of the one server of a consumer watching {SERVICES} services: "
                f"{len(stale)} WARNING lines 'no meshreg server answers' and {len(again)} INFO "
                f"lines 'live data again' ({total} client log lines in all); the rule is one "
                f"line per kind and server per LOG_INTERVAL naming how many services. "
                f"e.g.: {stale[:1]} {again[:1]}"
            )
            assert named(stale) == named(again) == SERVICES, (stale, again)  # each one counted
        finally:
            c.close(1.0)
            logger.removeHandler(lines)
            logger.setLevel(old_level)
