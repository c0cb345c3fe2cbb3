"""``meshreg instances`` with an empty answer from a node that sees only a minority of
its members says so, instead of "none registered" (a review: a single-server CLI asked
a node restarted inside a cut, which listed nothing the other nodes held)."""

from __future__ import annotations

import pytest
from helpers import NodeProcess, free_port_pair, run_cli

pytestmark = pytest.mark.timeout(60)


def test_an_empty_list_from_a_node_cut_off_from_its_peers_is_not_called_none_registered() -> None:
    port = free_port_pair()
    absent = [f"127.0.0.1:{free_port_pair()}" for _ in range(2)]  # never started: cut off
    peers = [arg for a in (f"127.0.0.1:{port}", *absent) for arg in ("--peer", a)]
    node = NodeProcess(*peers, port=port).start()
    lone = NodeProcess().start()  # a single node: its empty list is the truth
    try:
        result = run_cli("instances", "svc", "-s", node.address, "--timeout", "3")
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
        said = result.stderr
        assert f"the node that answered ({node.address}) sees only 1 of its 3" in said, said
        assert "none registered" not in said and "ask another node (-s)" in said
        result = run_cli("instances", "svc", "-s", lone.address, "--timeout", "3")
        assert result.returncode == 0 and "none registered" in result.stderr, result.stderr
    finally:
        node.cleanup()
        lone.cleanup()


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ({"ready": False, "members_up": 3, "members": 3}, "has not caught up from its peers"),
        ({"ready": True, "members_up": 2, "members": 4}, "sees only 2 of its 4"),
        ({"ready": True, "members_up": 2, "members": 3}, ""),  # a majority: its list holds
        ({"epoch": 1}, ""),  # a single node (no members), or an older one
        (None, ""),  # the ping failed: nothing to say
    ],
)
def test_what_the_ping_says_of_a_node_whose_list_is_empty(
    answer: dict[str, object] | None, said: str
) -> None:
    from meshreg.cli import _partial_view
    from meshreg.errors import ServerUnreachableError

    class Pinged:
        server = "127.0.0.1:7800"

        def ping(self) -> dict[str, object]:
            if answer is None:
                raise ServerUnreachableError("no reply")
            return answer

    text = _partial_view(Pinged())  # type: ignore[arg-type]
    assert (said in text and text.startswith("the node that answered")) if said else text == ""
