"""runtime/sd_notify: systemd's READY=1 protocol with the standard library only."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

from meshreg.runtime.sd_notify import SystemdNotifier


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    notifier.notify("READY=1")  # a no-op, no error


@pytest.mark.timeout(10)
def test_lines_go_in_one_datagram_to_the_socket_path() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        path = os.path.join(d, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(path)
            server.settimeout(5)
            SystemdNotifier({"NOTIFY_SOCKET": path}).notify("READY=1", "STATUS=ready")
            assert server.recv(4096) == b"READY=1\nSTATUS=ready"


@pytest.mark.timeout(10)
def test_an_abstract_socket_name_starts_with_a_nul() -> None:
    name = f"meshreg-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(5)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.address == "\0" + name
        notifier.notify("STOPPING=1")
        assert server.recv(4096) == b"STOPPING=1"


def test_a_missing_socket_raises_oserror() -> None:
    with pytest.raises(OSError):
        SystemdNotifier({"NOTIFY_SOCKET": "/nonexistent/meshreg/notify"}).notify("READY=1")
