"""A config writer and reader for the chaos suite (runs inside one node's namespace).

Write mode (the default): publishes to ``--data-ids`` in turn through its local node with
the public Client, every ``--cas-every``-th write a compare-and-set (``if_revision`` the
revision it last saw), and after each write reads the data id back. Every outcome is one
JSON line in ``--out`` (monotonic times, shared by every namespace):

    {"k": "ack", "t0", "t1", "id", "rev", "md5", "cas"}              acknowledged
    {"k": "err", "t0", "t1", "id", "md5", "code", "kind", "msg"}      refused or failed
    {"k": "read", "t0", "t1", "id", "rev"}                           read back (-1: absent)

``kind`` of an error: ``nothing`` (UNAVAILABLE "nothing was written"), ``unknown``
(UNAVAILABLE, outcome unknown), ``conflict``, ``unreachable`` (no answer), ``other``.
Every content is unique (writer, sequence number), so an md5 names one write. Runs until
stdin says ``quit`` (or closes) or ``--max-seconds``; prints ``ready`` after its first
acknowledged write.

Dump mode (``--dump``): for each data id, the node's current version and its whole history
(``config_history``, winner first within a revision) as one JSON line on stdout, then exit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import sys
import time
from typing import Any

from meshreg import Client
from meshreg.errors import ConflictError, OutcomeUnknownError, ServerError, ServerUnreachableError


def _kind(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, ConflictError):
        return exc.code, "conflict"
    if isinstance(exc, OutcomeUnknownError) and "UNAVAILABLE from" in str(exc):
        # a node answered UNAVAILABLE, and an earlier attempt's outcome is unknown (the
        # client says so since 2026-12-07; it was a ServerError): UNAVAILABLE, unknown
        return 8, "unknown"
    if isinstance(exc, ServerError):
        if exc.code == 8:
            return exc.code, "nothing" if "nothing was written" in exc.detail else "unknown"
        return exc.code, "other"
    if isinstance(exc, ServerUnreachableError):
        return 0, "unreachable"
    return -1, "other"


def dump(client: Client, data_ids: list[str]) -> int:
    out: dict[str, Any] = {}
    for data_id in data_ids:
        cur = client.config_get(data_id)
        hist = client.config_history(data_id, limit=1000)
        out[data_id] = {
            "cur": None if cur is None else [cur.revision, cur.md5],
            "hist": [[h.revision, h.md5, h.origin, h.deleted] for h in hist],
        }
    print(json.dumps(out), flush=True)
    return 0


def write(client: Client, args: argparse.Namespace, data_ids: list[str]) -> int:
    seen: dict[str, int] = {}
    end = time.monotonic() + args.max_seconds
    seq = 0
    announced = False
    with open(args.out, "a", encoding="utf-8") as out:

        def emit(rec: dict[str, Any]) -> None:
            out.write(json.dumps(rec) + "\n")
            out.flush()

        while time.monotonic() < end:
            ready, _, _ = select.select([sys.stdin.fileno()], [], [], args.interval)
            if ready:
                chunk = os.read(sys.stdin.fileno(), 4096)
                if not chunk or b"quit" in chunk:
                    break
            data_id = data_ids[seq % len(data_ids)]
            seq += 1
            content = f"{args.name} #{seq} {data_id}\n"
            md5 = hashlib.md5(content.encode()).hexdigest()
            cas = args.cas_every > 0 and seq % args.cas_every == 0
            t0 = time.monotonic()
            try:
                if cas:
                    info = client.config_publish(data_id, content, if_revision=seen.get(data_id, 0))
                else:
                    info = client.config_publish(data_id, content)
                emit(
                    {
                        "k": "ack",
                        "t0": t0,
                        "t1": time.monotonic(),
                        "id": data_id,
                        "rev": info.revision,
                        "md5": info.md5,
                        "sent": md5,
                        "cas": cas,
                    }
                )
                seen[data_id] = max(seen.get(data_id, 0), info.revision)
                if not announced:
                    print("ready", flush=True)
                    announced = True
            except Exception as exc:
                code, kind = _kind(exc)
                emit(
                    {
                        "k": "err",
                        "t0": t0,
                        "t1": time.monotonic(),
                        "id": data_id,
                        "md5": md5,
                        "cas": cas,
                        "code": code,
                        "kind": kind,
                        "msg": str(exc)[:300],
                    }
                )
            t0 = time.monotonic()
            try:
                got = client.config_get(data_id)
                rev = -1 if got is None else got.revision
                emit({"k": "read", "t0": t0, "t1": time.monotonic(), "id": data_id, "rev": rev})
                if rev > 0:
                    seen[data_id] = max(seen.get(data_id, 0), rev)
            except Exception as exc:
                code, kind = _kind(exc)
                emit({"k": "rerr", "t0": t0, "id": data_id, "code": code, "kind": kind})
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--name", default="w")
    p.add_argument("--data-ids", required=True)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--cas-every", type=int, default=3)
    p.add_argument("--max-seconds", type=float, default=600.0)
    p.add_argument("--timeout", type=float, default=4.0)
    p.add_argument("--out", default="")
    p.add_argument("--dump", action="store_true")
    args = p.parse_args(argv)
    data_ids = [d for d in args.data_ids.split(",") if d]
    # the writes' own budget too: a cut-off node's refusals are judged within the cut
    # (the client's default for config writes, 10 s, outlasts a short partition)
    client = Client(
        [args.server], timeout=args.timeout, attempt_timeout=1.0,
        config_write_timeout=args.timeout,
    )  # fmt: skip
    try:
        return dump(client, data_ids) if args.dump else write(client, args, data_ids)
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
