"""``python -m bench.config_catchup``: one anti-entropy round between a node holding a big
config table and a fresh node (``--scenario sync``: a fresh node's start), in one process
over the real peer wire with a fake clock, every handling timed for real.  bench/README.md
("A fresh node's anti-entropy catch-up") says what it prints and what it found.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import msgpack

from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import ConfigKey, ConfigLimits
from meshreg.configcenter.replication import (
    ConfigReplicator,
    SendDigests,
    SendHave,
    SendVersions,
)
from meshreg.wire.config_peer import (
    ConfigDigests,
    ConfigHave,
    ConfigVersions,
    decode_config_peer,
    encode_replication_effect,
)

A, B = "127.0.0.1:7000", "127.0.0.1:7100"
SENDS = (SendDigests, SendHave, SendVersions)


class GcClock:
    """The garbage collector's passes, timed (``gc.callbacks``): ``spent`` grows by each
    pass's seconds, so a handling's share is the difference across it."""

    def __init__(self) -> None:
        self.spent = 0.0
        self.passes = [0, 0, 0]  # per generation
        self.longest = [0.0, 0.0, 0.0]
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        took = time.perf_counter() - self._t0
        gen = info["generation"]
        self.spent += took
        self.passes[gen] += 1
        self.longest[gen] = max(self.longest[gen], took)

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    def summary(self) -> dict[str, Any]:
        return {"gc_passes": list(self.passes),
                "gc_longest_ms": [round(x * 1e3, 2) for x in self.longest],
                "gc_s": self.spent}  # fmt: skip


def gc_policy(name: str) -> tuple[int, int, int]:
    """``node``: the policy of a ``meshreg node`` process; ``python``: Python's thresholds."""
    if name == "node":
        from meshreg.runtime.gc_policy import avoid_full_collections

        return avoid_full_collections()
    return gc.get_threshold()


def fill(store: ConfigStore, ids: int, revisions: int, size: int) -> None:
    keys = [ConfigKey("public", "DEFAULT_GROUP", f"cfg{i:04d}.yaml") for i in range(ids)]
    for r in range(revisions):
        for i, key in enumerate(keys):
            store.publish(key, f"{r:04d}{i:04d}".ljust(size, "x"), now=float(r))


def handle(rep: ConfigReplicator, sender: str, msg: Any, now: float) -> list[Any]:
    """The runtime's dispatch of the three anti-entropy messages (runtime/config_plane.py)."""
    if isinstance(msg, ConfigDigests):
        return rep.on_digests(sender, msg.digests, msg.reply, msg.after, msg.upto, now)
    if isinstance(msg, ConfigHave):
        return rep.on_have(sender, msg.items, msg.reply, now, msg.keep)
    assert isinstance(msg, ConfigVersions)
    return rep.on_versions(msg.entries)


def run(
    ids: int, revisions: int, size: int, peer_keep: int | None = None, limit: float = 600.0
) -> dict[str, Any]:
    """``peer_keep`` None: B is fresh, A starts a round.  Else B keeps ``peer_keep``
    revisions, holds A's last ones already (the current versions agree, every history
    hash differs) and starts the round: A answers every data id with its revision hashes
    (``config_have``).  Until no wake-up is due within a second, or ``limit`` s of fake
    time."""
    b_limits = None if peer_keep is None else ConfigLimits(keep_revisions=peer_keep)
    a = ConfigReplicator(A, (A, B), ConfigStore(A), 0.0,
                         sync_interval=5.0 if peer_keep is None else 1000.0)  # fmt: skip
    b = ConfigReplicator(B, (A, B), ConfigStore(B, b_limits), 0.0,
                         sync_interval=1000.0 if peer_keep is None else 5.0)  # fmt: skip
    for r in (a, b):
        r.set_members_up({A, B})
    fill(a.store, ids, revisions, size)
    a.store.digests()  # the history hashes, cached as on a node after its first round
    if peer_keep is not None:
        for key in list(a.store.keys()):
            for e in a.store.entries(key)[-peer_keep:]:
                b.store.apply(e)
        b.store.digests()
    nodes = {A: a, B: b}
    stats: dict[str, Any] = {"messages": 0, "bytes": 0, "largest_bytes": 0, "versions": 0,
                             "handling_s": 0.0, "longest_s": 0.0, "longest_what": "",
                             "first_all_current_at": None}  # fmt: skip
    now = 5.0
    starter, starter_id = (a, A) if peer_keep is None else (b, B)
    started = time.perf_counter()
    out = starter.tick(now)
    took = time.perf_counter() - started
    wire: list[tuple[str, str, list[bytes]]] = []

    def emit(src: str, effects: list[Any], spent: float) -> float:
        """Encode ``src``'s sends (timed with the call that made them)."""
        t0 = time.perf_counter()
        for e in effects:
            if isinstance(e, SENDS):
                for frames in encode_replication_effect(src, e):
                    wire.append((src, e.peer, frames))
        return spent + time.perf_counter() - t0

    def account(spent: float, what: str) -> None:
        stats["handling_s"] += spent
        if spent > stats["longest_s"]:
            stats["longest_s"], stats["longest_what"] = spent, what

    account(emit(starter_id, out, took), "the round's start (tick)")
    start = now
    while now - start < limit:  # bounded by the fake clock
        while wire:
            src, dst, frames = wire.pop(0)
            size_bytes = sum(map(len, frames))
            stats["messages"] += 1
            stats["bytes"] += size_bytes
            stats["largest_bytes"] = max(stats["largest_bytes"], size_bytes)
            t0 = time.perf_counter()
            msg = decode_config_peer(frames[-1])
            if isinstance(msg, ConfigVersions) and dst == B:
                stats["versions"] += len(msg.entries)
            effects = handle(nodes[dst], src, msg, now)
            account(emit(dst, effects, time.perf_counter() - t0), f"{type(msg).__name__} at {dst}")
            if stats["first_all_current_at"] is None and all(
                b.store.current(k) == a.store.current(k) for k in a.store.keys_after(None)
            ):
                stats["first_all_current_at"] = now - start
        wake = min(a.next_wake(), b.next_wake())
        if wake > now + 1.0:
            break
        now = max(now, wake)
        for node_id, rep in nodes.items():
            t0 = time.perf_counter()
            account(emit(node_id, rep.tick(now), time.perf_counter() - t0), f"tick at {node_id}")
    same = all(
        b.store.current(k) == a.store.current(k)
        and b.store.history_hash(k) == a.store.history_hash(k)
        for k in a.store.keys_after(None)
    )
    return {**stats, "span_s": now - start, "converged": same, "ids": ids,
            "revisions": revisions, "size": size}  # fmt: skip


def receive(plane: Any, body: bytes, now: float) -> None:
    """What the runtime does with a peer message: handle it, send what it caused."""
    plane.on_peer(body, now)
    plane.flush(now)


def run_sync(ids: int, size: int, limit: float = 120.0) -> dict[str, Any]:
    """A fresh node's start (the ready gate's ``config_sync``) against one holding ``ids``
    data ids of one revision: two ``ConfigPlane`` s (memory only) whose peer messages go
    through the real wire, delivered at once, each handling (``on_peer`` + ``flush``,
    or ``tick``) timed; the clock fake.  Until the fresh node is ready and holds every
    current version (or ``limit`` s of fake time)."""
    from meshreg.config import NodeConfig
    from meshreg.runtime.config_plane import ConfigPlane

    pa, pb = (int(x.rpartition(":")[2]) for x in (A, B))
    wire: list[tuple[str, str, list[bytes]]] = []
    now = 1000.0

    def plane(me: str, port: int, forced: bool) -> Any:
        config = NodeConfig(port=port, peers=(A, B), data_dir="", config_force_ready=forced)
        return ConfigPlane(config, now, lambda to, frames: wire.append((me, to, frames)) or True,
                           lambda envelope, body: None, lambda frames: None)  # fmt: skip

    a = plane(A, pa, True)  # the node ahead (ready: it asks nothing)
    keys = [ConfigKey("public", "DEFAULT_GROUP", f"cfg{i:06d}.yaml") for i in range(ids)]
    for i, key in enumerate(keys):
        e = a.store.publish(key, f"{i:06d}".ljust(size, "x"), now=now - 100.0)
        a.store.commit(key, e.revision, e.origin, e.md5)
    a.store.digests()  # the history hashes, cached as on a node after its first round
    b = plane(B, pb, False)
    planes = {A: a, B: b}
    for me, p in planes.items():
        p.set_members_up({A, B} - {me})
    stats: dict[str, Any] = {"messages": 0, "bytes": 0, "largest_bytes": 0, "largest_op": "",
                             "handling_s": 0.0, "longest_s": 0.0, "longest_what": "",
                             "longest_gc_s": 0.0, "longest_own_s": 0.0, "longest_own_what": "",
                             "ready_at": None, "all_at": None}  # fmt: skip
    start = now
    by_op: dict[str, float] = {}  # the longest handling of each kind (ms)
    own_by_op: dict[str, float] = {}  # the longest handling of each kind less its GC (ms)

    def timed(what: str, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)``, its time (and the GC's share of it) accounted as ``what``."""
        t0, g0 = time.perf_counter(), clock.spent
        out = call(*args)
        spent, gc_s = time.perf_counter() - t0, clock.spent - g0
        stats["handling_s"] += spent
        by_op[what] = max(by_op.get(what, 0.0), round(spent * 1e3, 2))
        own = spent - gc_s
        own_by_op[what] = max(own_by_op.get(what, 0.0), round(own * 1e3, 2))
        if spent > stats["longest_s"]:
            stats["longest_s"], stats["longest_what"] = spent, what
            stats["longest_gc_s"] = gc_s
        if own > stats["longest_own_s"]:
            stats["longest_own_s"], stats["longest_own_what"] = own, what
        return out

    wakes = {A: now, B: now}
    with GcClock() as clock:
        while now - start < limit:  # bounded by the fake clock
            for me, p in planes.items():
                if now >= wakes[me]:
                    wakes[me] = timed(f"tick at {me}", p.tick, now)
            while wire:
                src, dst, frames = wire.pop(0)
                n, op = sum(map(len, frames)), msgpack.unpackb(frames[-1], raw=False)["op"]
                stats["messages"] += 1
                stats["bytes"] += n
                if n > stats["largest_bytes"]:
                    stats["largest_bytes"], stats["largest_op"] = n, op
                timed(f"{op} at {dst}", receive, planes[dst], frames[-1], now)
                wakes[dst] = min(wakes[dst], planes[dst].tick(now))
            if stats["ready_at"] is None and b.ready:
                stats["ready_at"] = now - start
            if (
                b.ready
                and len(b.store) == ids
                and all(b.store.current(k) == a.store.current(k) for k in keys)
            ):
                stats["all_at"] = now - start
                break
            now = max(now + 0.001, min(wakes.values()))
    return {**stats, **clock.summary(), "ids": ids, "size": size,
            "longest_ms_by_kind": by_op, "longest_own_ms_by_kind": own_by_op}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--ids", type=int, default=240)
    p.add_argument("--revisions", type=int, default=100)
    p.add_argument("--size", type=int, default=1024, help="content bytes per version")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--peer-keep", type=int, default=None,
                   help="push scenario: B keeps this many revisions and already holds A's "
                   "last ones (every history differs: config_have lists both ways)")  # fmt: skip
    p.add_argument("--gc", choices=("node", "python"), default="node",
                   help="node: the GC policy of a meshreg node process (no automatic full "
                   "collections); python: Python's own thresholds")  # fmt: skip
    p.add_argument("--scenario", choices=("push", "sync"), default="push",
                   help="push: one anti-entropy round (--ids x --revisions); sync: a fresh "
                   "node's start (config_sync), against --ids data ids")  # fmt: skip
    opts = p.parse_args(argv)
    import meshreg

    print(f"code: {meshreg.__file__}")
    print(f"gc: {opts.gc} (thresholds {gc_policy(opts.gc)})")
    if opts.scenario == "sync":
        results = [run_sync(opts.ids, opts.size) for _ in range(max(1, opts.repeat))]
        for r in results:
            print(
                f"sync, {r['ids']} ids x {r['size']} B: {r['messages']} messages, "
                f"{r['bytes'] / 1e6:.2f} MB, largest {r['largest_bytes'] / 1e6:.3f} MB "
                f"({r['largest_op']}); handling {r['handling_s'] * 1e3:.0f} ms in all, longest "
                f"{r['longest_s'] * 1e3:.1f} ms ({r['longest_what']}); ready after "
                f"{r['ready_at']} s, every version after {r['all_at']} s (fake clock)"
            )
            print(f"  GC in the longest handling {r['longest_gc_s'] * 1e3:.1f} ms; longest "
                  f"without GC {r['longest_own_s'] * 1e3:.1f} ms ({r['longest_own_what']}); "
                  f"GC passes per generation {r['gc_passes']}, longest "
                  f"{r['gc_longest_ms']} ms, {r['gc_s'] * 1e3:.0f} ms in all")  # fmt: skip
            print("  longest by kind (ms):", ", ".join(
                f"{k} {v}" for k, v in sorted(r["longest_ms_by_kind"].items())))  # fmt: skip
            print("  longest by kind less its GC (ms):", ", ".join(
                f"{k} {v}" for k, v in sorted(r["longest_own_ms_by_kind"].items())))  # fmt: skip
        print(json.dumps(results))
        return 0
    runs = [run(opts.ids, opts.revisions, opts.size, opts.peer_keep)
            for _ in range(max(1, opts.repeat))]  # fmt: skip
    for r in runs:
        first = r["first_all_current_at"]
        print(
            f"{r['ids']} ids x {r['revisions']} revisions x {r['size']} B: "
            f"{r['messages']} messages, {r['bytes'] / 1e6:.2f} MB, largest "
            f"{r['largest_bytes'] / 1e6:.3f} MB, {r['versions']} versions; handling "
            f"{r['handling_s'] * 1e3:.0f} ms in all, longest {r['longest_s'] * 1e3:.1f} ms "
            f"({r['longest_what']}); "
            f"span {r['span_s']:.2f} s (fake clock), every current version there after "
            f"{'-' if first is None else f'{first:.2f} s'}; converged {r['converged']}"
        )
    print(json.dumps(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
