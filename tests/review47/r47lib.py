"""review47 helpers: a loopback cluster (review36's Node, imported, never changed), providers
that record what they did, consumers that record every push, a sampler of every node's
full listings, and a judge that counts lost live instances, resurrected removed ones and
false unhealthy periods against what the providers actually did."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "review36"))
sys.path.insert(0, os.path.join(HERE, ".."))
from helpers import wait_until  # noqa: E402,F401
from r36lib import SHORT, Node, Sampler, members_up, new_nodes, running  # noqa: E402,F401

from meshreg.client import Client  # noqa: E402

log = logging.getLogger("r47")


class Truth:
    """What the providers did: per service, address -> (registered at, removed at or None)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reg: dict[tuple[str, str], list[tuple[float, float | None]]] = {}

    def registered(self, svc: str, addr: str, t0: float, t1: float) -> None:
        with self.lock:
            self.reg.setdefault((svc, addr), []).append((t1, None))

    def removed(self, svc: str, addr: str, t0: float, t1: float) -> None:
        # the write is in effect from t1 (its answer); before t0 it was live
        with self.lock:
            spans = self.reg[(svc, addr)]
            start, _ = spans[-1]
            spans[-1] = (start, t0)

    def live_at(self, svc: str, t: float, settle: float) -> set[str]:
        """Addresses live at t for at least ``settle`` s (registered before t - settle and
        not removed before t)."""
        out = set()
        with self.lock:
            for (s, a), spans in self.reg.items():
                if s != svc:
                    continue
                for start, end in spans:
                    if start <= t - settle and (end is None or end > t):
                        out.add(a)
        return out

    def removed_before(self, svc: str, t: float, settle: float) -> set[str]:
        """Addresses removed (and not registered again) before t - settle."""
        out = set()
        with self.lock:
            for (s, a), spans in self.reg.items():
                if s != svc:
                    continue
                start, end = spans[-1]
                if end is not None and end <= t - settle:
                    out.add(a)
        return out


class Provider:
    def __init__(self, name: str, servers: list[str], truth: Truth, **kw: Any) -> None:
        self.name = name
        self.truth = truth
        kw.setdefault("server_order", "listed")
        self.client = Client(servers, handle_sigterm=False, **kw)
        self.held: set[tuple[str, str, int]] = set()

    def register(self, svc: str, ip: str, port: int) -> None:
        t0 = time.monotonic()
        self.client.register(svc, ip, port)
        self.truth.registered(svc, f"{ip}:{port}", t0, time.monotonic())
        self.held.add((svc, ip, port))

    def deregister(self, svc: str, ip: str, port: int) -> None:
        t0 = time.monotonic()
        self.truth.removed(svc, f"{ip}:{port}", t0, t0)
        self.client.deregister(svc, ip, port)
        self.held.discard((svc, ip, port))

    def close(self) -> None:
        try:
            self.client.close(2.0)
        except Exception:  # noqa: BLE001
            pass


class Consumer:
    """One Client on one node (listed first), subscribed to every service."""

    def __init__(self, servers: list[str], services: list[str], **kw: Any) -> None:
        kw.setdefault("server_order", "listed")
        self.client = Client(servers, handle_sigterm=False, **kw)
        self.events: list[tuple[float, str, frozenset[str]]] = []
        self.last: dict[str, frozenset[str]] = {}
        self.lock = threading.Lock()
        for s in services:
            self.client.subscribe(s, self._cb(s))

    def _cb(self, service: str):  # type: ignore[no-untyped-def]
        def cb(xs: list[Any]) -> None:
            got = frozenset(i.address for i in xs if i.healthy)
            with self.lock:
                self.events.append((time.monotonic(), service, got))
                self.last[service] = got

        return cb

    def view(self, service: str) -> frozenset[str] | None:
        with self.lock:
            return self.last.get(service)

    def close(self) -> None:
        try:
            self.client.close(2.0)
        except Exception:  # noqa: BLE001
            pass


def judge(samples: list[tuple[float, str, str, dict[str, bool] | None]], truth: Truth,
          excluded: dict[str, list[tuple[float, float]]], settle: float = 1.5,
          t_from: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """Per node: missing live instances, unhealthy live ones (as periods), removed ones
    listed again after the node had shown them absent. ``excluded``: node -> periods in
    which that node is not judged (it is itself faulted)."""
    missing: dict[str, list[tuple[float, str, str]]] = {}
    unhealthy: dict[tuple[str, str, str], list[float]] = {}
    resurrected: list[tuple[float, str, str, str]] = []
    seen_absent: set[tuple[str, str, str]] = set()
    for t, node, svc, got in samples:
        if got is None or t < t_from:
            continue
        if any(a <= t <= b for a, b in excluded.get(node, [])):
            continue
        live = truth.live_at(svc, t, settle)
        for a in live:
            if a not in got:
                missing.setdefault(node, []).append((t, svc, a))
            elif not got[a]:
                unhealthy.setdefault((node, svc, a), []).append(t)
        gone = truth.removed_before(svc, t, settle)
        for a in gone:
            k = (node, svc, a)
            if a not in got:
                seen_absent.add(k)
            elif k in seen_absent:
                resurrected.append((t, node, svc, a))
    return {"missing": missing, "unhealthy": unhealthy, "resurrected": resurrected}


def summarize(j: dict[str, Any], t0: float) -> str:
    out = []
    for node, xs in j["missing"].items():
        ts = [x[0] for x in xs]
        out.append(f"{node}: {len(xs)} missing-live samples, {len({(x[1], x[2]) for x in xs})} "
                   f"instances, t={min(ts) - t0:.2f}..{max(ts) - t0:.2f}")  # fmt: skip
    for (node, svc, a), ts in j["unhealthy"].items():
        out.append(f"{node}: {svc} {a} unhealthy {len(ts)} samples t={min(ts) - t0:.2f}.."
                   f"{max(ts) - t0:.2f}")  # fmt: skip
    for t, node, svc, a in j["resurrected"][:10]:
        out.append(f"{node}: {svc} {a} resurrected at t={t - t0:.2f}")
    return "\n".join(out) or "clean"
