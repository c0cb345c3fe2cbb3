"""review50 F4: a forward decided again because its owner left the view
(``ConfigPlane._redecide_forwards``, review27 F1) goes to the new owner without ``resend``,
so the new owner does not ask a majority for its request id: when the old owner had
applied it and another write went on top before it left, the new owner (whose catch-up
fetches only the top revision) applies it a second time, on top of that other write.

Seen with real processes (review50, the 3 -> 4 scale-out run, /work/notes/review50.md):
one client publish (answered in 28 ms, never re-sent by the client) made hot-1.txt
revision 101 on the old owner (never committed there) and, after the owner's restart,
revision 103 on the new owner, over another client's revision 102.

Here on the fake clock and message queue of tests/runtime/test_config_plane.py
(deterministic): the old owner commits X at revision 1 with the third node, its answer and
its record to the forwarding node are lost, it commits W at revision 2, and it stops."""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "runtime"))
from test_config_plane import ADDRESSES, Net, owner_of  # noqa: E402

from meshreg.configcenter.model import ConfigKey  # noqa: E402

K = ConfigKey("public", "DEFAULT_GROUP", "x")
RX, RW = "a" * 32, "b" * 32


@pytest.mark.timeout(30)
def test_f4_a_redecided_forward_is_not_applied_twice() -> None:
    net = Net(3)
    old = owner_of("x")
    survivors = tuple(a for a in ADDRESSES if a != old)
    heir = owner_of("x", survivors)  # the forwarding node, and the owner once `old` left
    third = next(a for a in survivors if a != heir)
    # the old owner's messages to the forwarding node are lost (its record of X, its
    # answer to the forward, its commit message); the third node hears everything
    net.answer_back = False
    net.cut = {(old, heir)}
    net.request(heir, b"cli", "config_publish", data_id="x", content="X", request_id=RX)
    net.deliver()
    assert b"cli" not in net.replies  # the forward's answer never came
    x1 = net.planes[old].store.find_request(K, RX)
    assert x1 is not None and x1.revision == 1 and x1.committed  # acknowledged: old + third
    w = net.call(old, "config_publish", data_id="x", content="W", request_id=RW)
    assert w["ok"] and w["result"]["revision"] == 2, w  # another write on top
    # the old owner stops (SIGTERM, a rolling restart); its leave drops it from the view:
    # the forwarding node decides the forward again (it is the new owner)
    net.down = {old}
    net.cut = set()
    net.all_up()
    net.tick(0.5)
    reply = net.last(b"cli")
    assert reply["ok"], reply
    made = {a: sorted(e.revision for e in net.planes[a].store.entries(K)
                      if e.request_id == RX and e.committed) for a in survivors}  # fmt: skip
    current = net.planes[third].store.current(K)
    assert current is not None
    assert reply["result"]["revision"] == 1, (
        f"the forward decided again was applied a second time: answered revision "
        f"{reply['result']['revision']}; X committed at {made}; current is "
        f"{current.content!r}@{current.revision}, over W@2 (acknowledged after X)"
    )
    assert current.content == "W"
