"""A write that waited, unanswered, while the client went on must not undo the client's
later writes (found by an outside review, review12, F-zombie-reg).

The client sends `register X`; the attempt waits at a frozen owner (its socket) or in a
forwarding node whose owner does not answer (`peer_request_timeout`); the client sends it
again elsewhere (answered) and then deregisters X (answered). Applied late, with a fresh
stamp, the first copy brought X back on every node (and the client's session kept it
alive); the twin: a late deregister removed X registered again after it. Registry writes
now carry the client's `deadline` (PROTOCOL.md 2.1, "Deadline"): each attempt's end plus
0.5 s, as the Python client sends them; a node refuses a write past it (`late_writes`).
These tests send raw bodies exactly as the client does, deadlines included.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import zmq
from helpers import HOST, NodeProcess, raw_request, wait_until

from meshreg.core.mapping import responsible_node
from meshreg.model import ServiceKey

pytestmark = pytest.mark.timeout(120)

REGISTER = {"op": "register", "service": "", "ip": "10.60.0.2", "port": 2}


def _listed(node: NodeProcess, service: str) -> list[str] | None:
    try:
        reply = raw_request(node.port, {"v": 1, "id": 1, "op": "instances", "service": service}, 2)
    except zmq.Again:  # a frozen node does not answer
        return None
    if not reply["ok"] and reply["error"]["name"] == "UNAVAILABLE":
        return None  # (back from the freeze: no read before it has resynced)
    return sorted(f"{i['ip']}:{i['port']}" for i in reply["result"]["instances"])


def _state(node: NodeProcess, of: NodeProcess) -> str:
    reply: dict[str, Any] = raw_request(node.port, {"v": 1, "id": 1, "op": "cluster"})
    return next(str(m["state"]) for m in reply["result"]["members"] if m["address"] == of.address)


def _freeze(node: NodeProcess) -> None:
    node.freeze()


ATTEMPT = 1.0  # s: the Python client's attempt_timeout
SLACK = 0.5  # s: client/session.DEADLINE_SLACK


def _attempt(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the client sends one attempt of it: with the attempt's deadline."""
    if body.get("op") not in ("register", "deregister", "update", "register_batch"):
        return body
    return {**body, "deadline": round((time.time() + ATTEMPT + SLACK) * 1000)}


def _past(late: dict[str, Any]) -> None:
    """Wait until ``late``'s deadline has passed (at most ATTEMPT + SLACK): the owner stays
    stopped past it. A stopped node that resumes within it may still apply the late copy:
    the documented window of the deadline rule (PROTOCOL.md 2.1)."""
    wait_until(lambda: time.time() * 1000 > late["deadline"], ATTEMPT + SLACK + 1, interval=0.05)


def _direct_link(owner: NodeProcess) -> zmq.Socket[bytes]:
    """A DEALER to ``owner``, connected (a ping answered): a write sent on it later waits
    in the owner's socket if the owner is stopped."""
    direct: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    direct.setsockopt(zmq.LINGER, 0)
    direct.connect(f"tcp://{HOST}:{owner.port}")
    direct.send_multipart([b"", msgpack.packb({"v": 1, "id": 1, "op": "ping"})])
    assert direct.poll(5000), "the owner answers a ping on the direct link"
    direct.recv_multipart()
    return direct


def _ok(node: NodeProcess, body: dict[str, Any]) -> None:
    reply = raw_request(node.port, {"v": 1, "id": 2, **_attempt(body)})
    assert reply["ok"], reply


def _owned_by_first(
    start_cluster: Callable[..., list[NodeProcess]], prefix: str
) -> tuple[list[NodeProcess], str]:
    """A 3-node cluster, all members up, and a service the first node is responsible for."""
    nodes = start_cluster(3)
    wait_until(lambda: all(_state(nodes[1], n) == "up" for n in nodes), 15, what="3 members up")
    members = sorted(n.address for n in nodes)
    service = next(
        f"{prefix}{i}"
        for i in range(10_000)
        if responsible_node(ServiceKey("public", "DEFAULT_GROUP", f"{prefix}{i}"), members)
        == nodes[0].address
    )
    return nodes, service


def test_a_returned_deregistration_is_not_undone_by_a_late_register(
    start_cluster: Callable[..., list[NodeProcess]],
) -> None:
    nodes, service = _owned_by_first(start_cluster, "zombie")
    owner, b, c = nodes
    register = {**REGISTER, "service": service}
    _ok(c, {"op": "register", "service": service, "ip": "10.60.0.1", "port": 1})  # a keeper
    wait_until(lambda: all(_listed(n, service) == ["10.60.0.1:1"] for n in nodes), 10)
    direct = _direct_link(owner)  # the client's link to the owner
    try:
        _freeze(owner)
        try:
            # the register sent straight to the owner: no answer (the attempt times out)
            late = _attempt(register)
            direct.send_multipart([b"", msgpack.packb({"v": 1, "id": 3, **late})])
            wait_until(lambda: _state(c, owner) == "down", 10, what="C sees the owner down")
            _ok(c, register)  # the re-send, answered
            _ok(c, {"op": "deregister", "service": service, "ip": "10.60.0.2", "port": 2})
            wait_until(
                lambda: all(_listed(n, service) == ["10.60.0.1:1"] for n in (b, c)),
                5,
                what="the deregistered instance gone on the live nodes",
            )
            _past(late)
        finally:
            owner.signal(signal.SIGCONT)
        wait_until(lambda: _listed(owner, service) is not None, 10, what="the owner answers")
        seen_back = []
        window_ends = time.monotonic() + 5.0  # watch every node for 5 s after SIGCONT
        while time.monotonic() < window_ends:
            views = {n.address: _listed(n, service) for n in nodes}
            if any(v is not None and "10.60.0.2:2" in v for v in views.values()):
                seen_back.append(views)
            threading.Event().wait(0.2)  # poll interval of the observation window
        assert not seen_back, (
            f"the deregistered instance came back after the owner resumed "
            f"({len(seen_back)} samples): {seen_back[0]}"
        )
    finally:
        direct.close()


def test_a_late_deregister_does_not_remove_an_instance_registered_after_it(
    start_cluster: Callable[..., list[NodeProcess]],
) -> None:
    """The twin: the deregister waits at the frozen owner, its re-send through C is
    answered, the provider registers the instance again (a restart, the client's redo)
    through C, answered; when the owner resumes, the live instance must stay."""
    nodes, service = _owned_by_first(start_cluster, "twin")
    owner, b, c = nodes
    register = {**REGISTER, "service": service}
    deregister = {**register, "op": "deregister"}
    _ok(c, register)
    wait_until(lambda: all(_listed(n, service) == ["10.60.0.2:2"] for n in nodes), 10)
    direct = _direct_link(owner)  # the client's link to the owner
    try:
        _freeze(owner)
        try:
            late = _attempt(deregister)
            direct.send_multipart([b"", msgpack.packb({"v": 1, "id": 3, **late})])
            wait_until(lambda: _state(c, owner) == "down", 10, what="C sees the owner down")
            _ok(c, deregister)  # the re-send, answered
            _ok(c, register)  # registered again, answered
            wait_until(
                lambda: all(_listed(n, service) == ["10.60.0.2:2"] for n in (b, c)),
                5,
                what="the re-registered instance on the live nodes",
            )
            _past(late)
        finally:
            owner.signal(signal.SIGCONT)
        wait_until(lambda: _listed(owner, service) is not None, 10, what="the owner answers")
        lost = []
        window_ends = time.monotonic() + 3.0  # under unhealthy_after: nothing may go missing
        while time.monotonic() < window_ends:
            raw_request(c.port, {"v": 1, "id": 4, **register, "op": "beat"})  # it is alive
            views = {n.address: _listed(n, service) for n in nodes}
            if any(v is not None and "10.60.0.2:2" not in v for v in views.values()):
                lost.append(views)
            threading.Event().wait(0.2)  # poll interval of the observation window
        assert not lost, (
            f"the registered instance was removed when the owner resumed "
            f"({len(lost)} samples): {lost[-1]}"
        )
    finally:
        direct.close()


def test_a_forwarding_node_does_not_apply_a_register_after_a_newer_deregister(
    start_cluster: Callable[..., list[NodeProcess]],
) -> None:
    """The other path of the by-hand run: no resume needed.  B forwards the register to
    the frozen owner and, after its wait (0.8 s before the write's deadline since
    review13; `peer_request_timeout` before), applies it itself; the client's re-send
    through C and its deregister through C come after, and must win."""
    nodes, service = _owned_by_first(start_cluster, "fwd")
    owner, b, c = nodes
    register = {**REGISTER, "service": service}
    _ok(c, {"op": "register", "service": service, "ip": "10.60.0.1", "port": 1})  # a keeper
    wait_until(lambda: all(_listed(n, service) == ["10.60.0.1:1"] for n in nodes), 10)
    via_b = zmq.Context.instance().socket(zmq.DEALER)  # the client's first attempt, through B
    via_b.setsockopt(zmq.LINGER, 0)
    via_b.connect(f"tcp://{HOST}:{b.port}")
    try:
        _freeze(owner)
        via_b.send_multipart([b"", msgpack.packb({"v": 1, "id": 3, **_attempt(register)})])
        wait_until(lambda: _state(c, owner) == "down", 10, what="C sees the owner down")
        _ok(c, register)  # the client's re-send after its attempt timed out, answered
        _ok(c, {"op": "deregister", "service": service, "ip": "10.60.0.2", "port": 2})
        # B answers its forwarded register (its fallback, within the attempt)
        assert via_b.poll(10_000), "B answers the register it forwarded"
        via_b.recv_multipart()
        back = {}
        window_ends = time.monotonic() + 3.0
        while time.monotonic() < window_ends and not back:
            views = {n.address: _listed(n, service) for n in (b, c)}
            if any(v is not None and "10.60.0.2:2" in v for v in views.values()):
                back = views
            threading.Event().wait(0.2)  # poll interval of the observation window
        assert not back, f"the deregistered instance came back while the owner is frozen: {back}"
    finally:
        owner.signal(signal.SIGCONT)
        via_b.close()
