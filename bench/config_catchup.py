"""``python -m bench.config_catchup``: a fresh node's config catch-up in one process, every
peer message through the real wire, the clock fake, the handling timed for real
(bench/README.md, "A fresh node's anti-entropy catch-up"; docs/CONFIG.md, "Anti-entropy").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import msgpack

from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import ConfigKey
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


def fill(store: ConfigStore, ids: int, revisions: int, size: int) -> None:
    keys = [ConfigKey("public", "DEFAULT_GROUP", f"cfg{i:04d}.yaml") for i in range(ids)]
    for r in range(revisions):
        for i, key in enumerate(keys):
            store.publish(key, f"{r:04d}{i:04d}".ljust(size, "x"), now=float(r))


def handle(rep: ConfigReplicator, sender: str, msg: Any, now: float) -> list[Any]:
    """The runtime's dispatch of the three anti-entropy messages."""
    if isinstance(msg, ConfigDigests):
        return rep.on_digests(sender, msg.digests, msg.reply, msg.after, msg.upto, now)
    if isinstance(msg, ConfigHave):
        return rep.on_have(sender, msg.items, msg.reply, now, msg.keep)
    assert isinstance(msg, ConfigVersions)
    return rep.on_versions(msg.entries)


class Meter:
    """Messages, bytes, the largest message and the handling (in all, the longest, and the
    longest of each kind in ms) of one catch-up."""

    def __init__(self) -> None:
        self.stats: dict[str, Any] = {"messages": 0, "bytes": 0, "largest_bytes": 0,
                                      "handling_s": 0.0, "longest_s": 0.0,
                                      "longest_what": ""}  # fmt: skip
        self.by_kind: dict[str, float] = {}

    def message(self, frames: list[bytes]) -> bool:
        """Count a message; whether it is the largest so far."""
        n, s = sum(map(len, frames)), self.stats
        s["messages"] += 1
        s["bytes"] += n
        if n <= s["largest_bytes"]:
            return False
        s["largest_bytes"] = n
        return True

    def account(self, spent: float, what: str) -> None:
        self.stats["handling_s"] += spent
        self.by_kind[what] = max(self.by_kind.get(what, 0.0), round(spent * 1e3, 2))
        if spent > self.stats["longest_s"]:
            self.stats["longest_s"], self.stats["longest_what"] = spent, what


def run(ids: int, revisions: int, size: int, limit: float = 600.0) -> dict[str, Any]:
    """One anti-entropy round from a node holding ``ids`` x ``revisions`` versions to a fresh
    node: every message encoded, delivered and handled at once, until no wake-up is due
    within a second (or ``limit`` s of fake time)."""
    a = ConfigReplicator(A, (A, B), ConfigStore(A), 0.0, sync_interval=5.0)
    b = ConfigReplicator(B, (A, B), ConfigStore(B), 0.0, sync_interval=1000.0)
    for r in (a, b):
        r.set_members_up({A, B})
    fill(a.store, ids, revisions, size)
    a.store.digests()  # the history hashes, cached as on a node after its first round
    nodes, meter = {A: a, B: b}, Meter()
    wire: list[tuple[str, str, list[bytes]]] = []
    stats = {**meter.stats, "versions": 0, "first_all_current_at": None}
    start = now = 5.0

    def timed(what: str, node_id: str, call: Any, *args: Any) -> None:
        """``call(*args)``'s effects encoded onto the wire, timed with the call."""
        t0 = time.perf_counter()
        for e in call(*args):
            if isinstance(e, SENDS):
                wire.extend((node_id, e.peer, f) for f in encode_replication_effect(node_id, e))
        meter.account(time.perf_counter() - t0, what)

    timed("the round's start (tick)", A, a.tick, now)
    while now - start < limit:  # bounded by the fake clock
        while wire:
            src, dst, frames = wire.pop(0)
            meter.message(frames)
            msg = decode_config_peer(frames[-1])
            if isinstance(msg, ConfigVersions) and dst == B:
                stats["versions"] += len(msg.entries)
            timed(f"{type(msg).__name__} at {dst}", dst, handle, nodes[dst], src, msg, now)
            if stats["first_all_current_at"] is None and all(
                b.store.current(k) == a.store.current(k) for k in a.store.keys_after(None)
            ):
                stats["first_all_current_at"] = now - start
        wake = min(a.next_wake(), b.next_wake())
        if wake > now + 1.0:
            break
        now = max(now, wake)
        for node_id, rep in nodes.items():
            timed(f"tick at {node_id}", node_id, rep.tick, now)
    same = all(
        b.store.current(k) == a.store.current(k)
        and b.store.history_hash(k) == a.store.history_hash(k)
        for k in a.store.keys_after(None)
    )
    return {**stats, **meter.stats, "span_s": now - start, "converged": same, "ids": ids,
            "revisions": revisions, "size": size}  # fmt: skip


def run_sync(ids: int, size: int, limit: float = 120.0) -> dict[str, Any]:
    """A fresh node's start (the ready gate's ``config_sync``) against one holding ``ids``
    data ids of one revision: two ``ConfigPlane`` s (memory only) whose peer messages go
    through the real wire, delivered at once, each handling (``on_peer`` + ``flush``,
    or ``tick``) timed; the clock fake.  Until the fresh node is ready and holds every
    current version (or ``limit`` s of fake time)."""
    from meshreg.config import NodeConfig
    from meshreg.runtime.config_plane import ConfigPlane

    wire: list[tuple[str, str, list[bytes]]] = []
    start = now = 1000.0

    def plane(me: str, forced: bool) -> Any:
        port = int(me.rpartition(":")[2])
        config = NodeConfig(port=port, peers=(A, B), data_dir="", config_force_ready=forced)
        return ConfigPlane(config, now, lambda to, frames: wire.append((me, to, frames)) or True,
                           lambda envelope, body: None, lambda frames: None)  # fmt: skip

    a = plane(A, True)  # the node ahead (ready: it asks nothing)
    keys = [ConfigKey("public", "DEFAULT_GROUP", f"cfg{i:06d}.yaml") for i in range(ids)]
    for i, key in enumerate(keys):
        e = a.store.publish(key, f"{i:06d}".ljust(size, "x"), now=now - 100.0)
        a.store.commit(key, e.revision, e.origin, e.md5)
    a.store.digests()  # the history hashes, cached as on a node after its first round
    b = plane(B, False)
    planes = {A: a, B: b}
    for me, p in planes.items():
        p.set_members_up({A, B} - {me})
    meter, wakes = Meter(), {A: now, B: now}
    stats: dict[str, Any] = {"largest_op": "", "ready_at": None, "all_at": None}
    while now - start < limit:  # bounded by the fake clock
        for me, p in planes.items():
            if now >= wakes[me]:
                t0 = time.perf_counter()
                wakes[me] = p.tick(now)
                meter.account(time.perf_counter() - t0, f"tick at {me}")
        while wire:
            src, dst, frames = wire.pop(0)
            op = msgpack.unpackb(frames[-1], raw=False)["op"]
            if meter.message(frames):
                stats["largest_op"] = op
            t0 = time.perf_counter()
            planes[dst].on_peer(frames[-1], now)
            planes[dst].flush(now)
            meter.account(time.perf_counter() - t0, f"{op} at {dst}")
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
    return {**meter.stats, **stats, "ids": ids, "size": size, "longest_ms_by_kind": meter.by_kind}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--ids", type=int, default=240)
    p.add_argument("--revisions", type=int, default=100)
    p.add_argument("--size", type=int, default=1024, help="content bytes per version")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--scenario", choices=("push", "sync"), default="push",
                   help="push: one anti-entropy round (--ids x --revisions); sync: a fresh "
                   "node's start (config_sync), against --ids data ids")  # fmt: skip
    opts = p.parse_args(argv)
    import meshreg

    print(f"code: {meshreg.__file__}")
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
            print("  longest by kind (ms):", ", ".join(
                f"{k} {v}" for k, v in sorted(r["longest_ms_by_kind"].items())))  # fmt: skip
        print(json.dumps(results))
        return 0
    runs = [run(opts.ids, opts.revisions, opts.size) for _ in range(max(1, opts.repeat))]
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
