"""``python -m bench.config_catchup``: one anti-entropy round between a node holding a big
config table and a fresh node that holds none of it (docs/CONFIG.md, "Anti-entropy").

In one process: two ``ConfigReplicator`` s, every message encoded and decoded with the
peer wire (``wire/config_peer``) as the runtime does, delivered at once; the clock is
fake (it jumps to the next wake-up: the push steps' 20 ms gaps), the handling is timed
for real. Reported: messages and bytes, the largest message, the longest single handling
(a loop stall on either side: the sender's tick or answer with its encoding, or the
receiver's decoding and merge), the handling in total, and the catch-up's span on the
fake clock. ``--scenario sync``: a fresh node's start instead (two ``ConfigPlane`` s: the
ready gate's ``config_sync``, its answer, the pushes), against ``--ids`` data ids of one
revision, until the fresh node is ready and holds them all; the longest handling of each
kind too. Runs on this tree's code or, with ``PYTHONPATH=<a copy of main>``, on that.
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
    """The runtime's dispatch of the three anti-entropy messages (``now`` where taken)."""
    if isinstance(msg, ConfigDigests):
        args = (sender, msg.digests, msg.reply, msg.after, msg.upto)
        try:
            return rep.on_digests(*args, now)  # type: ignore[call-arg]
        except TypeError:  # a tree before the push steps
            return rep.on_digests(*args)
    if isinstance(msg, ConfigHave):
        try:
            keep = getattr(msg, "keep", None)  # (a tree before it: no such field)
            extra = () if keep is None else (keep,)
            return rep.on_have(sender, msg.items, msg.reply, now, *extra)  # type: ignore[call-arg]
        except TypeError:
            return rep.on_have(sender, msg.items, msg.reply)
    assert isinstance(msg, ConfigVersions)
    return rep.on_versions(msg.entries)


def run(ids: int, revisions: int, size: int) -> dict[str, Any]:
    a = ConfigReplicator(A, (A, B), ConfigStore(A), 0.0, sync_interval=5.0)
    b = ConfigReplicator(B, (A, B), ConfigStore(B), 0.0, sync_interval=1000.0)
    for r in (a, b):
        r.set_members_up({A, B})
    fill(a.store, ids, revisions, size)
    a.store.digests()  # the history hashes, cached as on a node after its first round
    nodes = {A: a, B: b}
    stats = {"messages": 0, "bytes": 0, "largest_bytes": 0, "versions": 0,
             "handling_s": 0.0, "longest_s": 0.0, "longest_what": "",
             "first_all_current_at": None}  # fmt: skip
    now = 5.0
    started = time.perf_counter()
    out = a.tick(now)
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

    account(emit(A, out, took), "the round's start (tick)")
    start = now
    while True:
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
    stats = {"messages": 0, "bytes": 0, "largest_bytes": 0, "largest_op": "",
             "handling_s": 0.0, "longest_s": 0.0, "longest_what": "", "ready_at": None,
             "all_at": None}  # fmt: skip
    start = now

    by_op: dict[str, float] = {}  # the longest handling of each kind (ms)

    def account(spent: float, what: str) -> None:
        stats["handling_s"] += spent
        by_op[what] = max(by_op.get(what, 0.0), round(spent * 1e3, 2))
        if spent > stats["longest_s"]:
            stats["longest_s"], stats["longest_what"] = spent, what

    wakes = {A: now, B: now}
    while now - start < limit:
        for me, p in planes.items():
            if now >= wakes[me]:
                t0 = time.perf_counter()
                wakes[me] = p.tick(now)
                account(time.perf_counter() - t0, f"tick at {me}")
        while wire:
            src, dst, frames = wire.pop(0)
            n = sum(map(len, frames))
            stats["messages"] += 1
            stats["bytes"] += n
            if n > stats["largest_bytes"]:
                op = msgpack.unpackb(frames[-1], raw=False)["op"]
                stats["largest_bytes"], stats["largest_op"] = n, op
            t0 = time.perf_counter()
            planes[dst].on_peer(frames[-1], now)
            planes[dst].flush(now)
            account(time.perf_counter() - t0, f"{msgpack.unpackb(frames[-1], raw=False)['op']} "
                    f"at {dst}")  # fmt: skip
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
    return {**stats, "ids": ids, "size": size, "longest_ms_by_kind": by_op}


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
