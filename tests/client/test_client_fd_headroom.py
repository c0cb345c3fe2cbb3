"""A client made near the process's descriptor limit (review55's note): libzmq aborted the
process (SIGABRT, "Too many open files (src/epoll.cpp:38)") or a bare ``ZMQError``
escaped ``Client()``.  Now ``Client()`` raises a ``MeshregError`` naming the limit, and
the process lives on."""

from __future__ import annotations

import errno
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import zmq

import meshreg
from meshreg import Client
from meshreg.client import client as client_module
from meshreg.errors import MeshregError

TREE = Path(meshreg.__file__).parent.parent

SCRIPT = """
import os, resource, sys
from meshreg import Client
from meshreg.errors import MeshregError
used = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (used + 12, used + 12))
made = []
try:
    for _ in range(5):
        made.append(Client(["127.0.0.1:1"], timeout=0.5))
except MeshregError as exc:
    print("refused:", exc)
for c in made:
    c.close()
print("alive", len(made))
"""


@pytest.mark.timeout(60)
def test_a_client_near_the_descriptor_limit_is_refused_and_the_process_lives() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=50, cwd=TREE
    )
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert "refused: cannot make a meshreg client" in out.stdout, out.stdout
    assert "ulimit -n" in out.stdout and "alive 0" in out.stdout


def test_a_zmq_error_while_the_client_is_made_is_a_meshreg_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A descriptor taken between the check and the sockets: the ZMQError comes out as a
    MeshregError, and the client's notifier thread does not stay behind."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise zmq.ZMQError(errno.EMFILE)

    monkeypatch.setattr(client_module, "ClientAgent", refuse)
    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(MeshregError, match="cannot make a meshreg client"):
        Client(["127.0.0.1:1"])
    for t in threading.enumerate():
        if t.ident not in before and t.name == "meshreg-client-notify":
            t.join(5)
            assert not t.is_alive()
