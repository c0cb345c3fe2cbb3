"""systemd's readiness protocol (``sd_notify``), with the standard library only.

A unit with ``Type=notify`` counts its service started when the service sends
``READY=1`` to the datagram socket named by ``$NOTIFY_SOCKET`` (systemd sets it for such
a unit only); ``STATUS=...`` is the line ``systemctl status`` shows, ``STOPPING=1`` says
a shutdown began.  ``meshreg node`` says READY=1 once it has caught up from its peers
(runtime/node.py), so ``systemctl restart`` returns when the node can serve, and a
rolling restart that restarts the nodes one by one with it waits for each.

Without ``$NOTIFY_SOCKET`` (not under systemd, or ``Type=simple``) every call is a no-op.
A failure to send is not the node's problem: it is logged once by the caller and ignored.
"""

from __future__ import annotations

import os
import socket


class SystemdNotifier:
    """Sends state lines to ``$NOTIFY_SOCKET`` (``environ`` for tests)."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace (a leading NUL byte)
        self.address: str | None = ("\0" + path[1:] if path.startswith("@") else path) or None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> None:
        """Send ``KEY=value`` lines in one datagram; raises OSError if that fails."""
        if self.address is None:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(self.address)
            sock.sendall("\n".join(lines).encode("utf-8", "replace"))
