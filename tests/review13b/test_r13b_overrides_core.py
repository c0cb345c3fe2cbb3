"""review13b F1, sans-IO: two nodes' override entries of one instance merge field by field.

Node A takes an operator's drain (enabled=False) at stamp 1; node B, not holding it yet (a
partition, or an owner frozen so each forwarder applies the write itself), takes a weight
at stamp 2. Each acknowledged its write. When the entries meet, both fields must hold;
and a clear at stamp 3 on a node that never held the drain must still beat it."""

from __future__ import annotations

from meshreg.core.overrides import Overrides
from meshreg.model import InstanceId, ServiceKey

KEY = ServiceKey("public", "DEFAULT_GROUP", "orders")
IID = InstanceId("10.1.1.1", 80, "DEFAULT")


def test_drain_and_weight_from_two_nodes_both_hold_after_merge() -> None:
    a, b = Overrides(), Overrides()
    # (put: weight, enabled, weight's stamp, enabled's stamp, now; 0: field not carried)
    a.put(KEY, IID, None, False, 0, 1, 0.0)  # A: drain
    b.put(KEY, IID, 5.0, None, 2, 0, 0.0)  # B: weight, without A's entry
    a.put(KEY, IID, 5.0, None, 2, 0, 0.0)  # B's entry reaches A
    b.put(KEY, IID, None, False, 0, 1, 0.0)  # A's entry reaches B
    for node in (a, b):
        assert node.effective(KEY, IID, 1.0, True) == (5.0, False)
