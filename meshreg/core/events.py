"""Moved to :mod:`meshreg.core.effects` (one union of every effect); kept for imports."""

from meshreg.core.effects import (
    Effect,
    InstanceView,
    PeerDataRejected,
    ServiceChanged,
    StallDetected,
    SyncAnnounced,
)

__all__ = ["Effect", "InstanceView", "PeerDataRejected", "ServiceChanged", "StallDetected"]
__all__ += ["SyncAnnounced"]
