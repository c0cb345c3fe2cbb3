"""review57 F1: with 3 of 5 nodes down, a config write from a client given the whole
server list (the usual ``Client([n1..n5])`` / ``MESHREG_SERVERS``) raises
``OutcomeUnknownError`` "the outcome of this config_publish is unknown (it may have been
applied ...): re-send it with request_id=..." after the full time-out, although both live
nodes answered "nothing was written" and the three dead ones refused the connection (the
client even logs "refused the connection (no node listens there)"): nothing can have been
applied.  Given only a live node, the same write raises the promised UNAVAILABLE.

README "Configuration center": "A node that sees only a minority refuses with
``UNAVAILABLE`` "nothing was written"." and "a write no node answered raises
``OutcomeUnknownError``: it may have been applied".  Here nodes did answer, and said so.
An application that treats UNAVAILABLE as "not written, retry later" and an
OutcomeUnknownError as "maybe written, reconcile" takes the wrong branch, and an
operator is told the write may have landed during a majority outage.

Observed (5 nodes, 3 SIGKILLed, timeout 3 s; CLI and Python, 3 runs each): every write
``OutcomeUnknownError`` (CLI: "meshreg: error: ... UNAVAILABLE from A: ... nothing was
written; retry on a node of the majority side (then no answer from C, D, E in the 0.97s
left of this call's time-out); the outcome of this config_publish is unknown (it may have
been applied ...") after 3.0 s; with ``Client([A])``: ``ServerError`` UNAVAILABLE
"nothing was written".  Cause (read after): ``ConfigOps._read.failed``
(client/config_session.py) ignores ``exc.unsent`` in the branch "a node answered and
those asked after it did not" and always wraps it in ``_outcome_unknown``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from helpers import NodeProcess, run_cli, wait_until

from meshreg import Client
from meshreg.errors import ErrorCode, OutcomeUnknownError, ServerError


@pytest.mark.timeout(90)
def test_minority_refusal_is_unavailable_not_outcome_unknown(
    start_cluster: Callable[..., list[NodeProcess]],
) -> None:
    nodes = start_cluster(5)
    servers = [n.address for n in nodes]
    with Client(servers, timeout=10) as c:
        assert c.config_publish("r57-min", "before").revision == 1  # a majority: fine
    for n in nodes[2:]:
        n.kill()  # 3 of 5 down: no majority anywhere
    for live in servers[:2]:  # both live nodes know it (they refuse config writes)
        wait_until(
            lambda live=live: "config writes refused" in run_cli("ping", "-s", live).stdout,
            15,
            0.1,
            f"{live} to see it has no majority",
        )

    # the reference: a client given a live node only is told what the docs say
    with Client([servers[0]], timeout=3) as one:
        with pytest.raises(ServerError) as ref:
            one.config_publish("r57-min", "during")
        assert ref.value.code == ErrorCode.UNAVAILABLE
        assert "nothing was written" in str(ref.value)

    # the same write, from a client given the whole list (live nodes first or not)
    with Client(servers, timeout=3) as c:
        for attempt in range(2):
            try:
                c.config_publish("r57-min", f"during-{attempt}")
            except OutcomeUnknownError as exc:
                pytest.fail(
                    "both live nodes answered 'nothing was written' and the other three "
                    "refused the connection, yet the client says the write may have been "
                    f"applied: {exc}"
                )
            except ServerError as exc:
                assert exc.code == ErrorCode.UNAVAILABLE
                assert "nothing was written" in str(exc)
            else:
                pytest.fail("a write was acknowledged with 3 of 5 nodes down")
        # and indeed nothing was written
        assert c.config_get("r57-min").content == "before"
