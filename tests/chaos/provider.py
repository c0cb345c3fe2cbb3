"""A provider for the chaos suite: registers instances through its local node and beats.

Runs inside a node's namespace. Registers ``--per-service`` instances of each service
(``ip`` given, ports ``port_base + 100*service_index + k``, ``--port-base`` 20000 by
default) with the documented Python client (``beat_interval`` as given; ``--no-sessions``:
per-instance beats, as a client of another language sends), prints ``ready <monotonic
time>``, then obeys stdin lines:

    dereg SERVICE IP PORT   deregister one instance, in a thread of its own (several may run
                            at once); prints "ok SERVICE IP PORT <t_start> <t_end>" or "err ..."
    quit                    deregister everything (Client.close) and exit

Killing it (SIGKILL) is the "provider death" fault: its beats stop, nothing is
deregistered. Bounded: it exits by itself after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import threading
import time

from meshreg import Client


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--ip", required=True)
    p.add_argument("--services", required=True)
    p.add_argument("--per-service", type=int, default=3)
    p.add_argument("--beat-interval", type=float, default=0.5)
    p.add_argument("--max-seconds", type=float, default=600.0)
    p.add_argument("--port-base", type=int, default=20000)
    p.add_argument("--no-sessions", action="store_true")
    args = p.parse_args(argv)
    services = [s for s in args.services.split(",") if s]
    client = Client(
        [args.server],
        beat_interval=args.beat_interval,
        timeout=5.0,
        attempt_timeout=1.0,
        sessions=not args.no_sessions,
    )
    for si, svc in enumerate(services):
        for k in range(args.per_service):
            client.register(svc, args.ip, args.port_base + 100 * si + k)
    print(f"ready {time.monotonic()}", flush=True)
    end = time.monotonic() + args.max_seconds
    lock = threading.Lock()
    workers: list[threading.Thread] = []

    def deregister(svc: str, ip: str, port: int) -> None:
        t0 = time.monotonic()
        try:
            client.deregister(svc, ip, port)
            line = f"ok {svc} {ip} {port} {t0} {time.monotonic()}"
        except Exception as exc:  # reported to the test, which fails on it
            line = f"err {svc} {ip} {port} {type(exc).__name__}: {exc}"
        with lock:
            print(line, flush=True)

    pending = b""
    quit_ = False
    while time.monotonic() < end and not quit_:
        # os.read, not sys.stdin.readline(): a buffered reader would swallow several lines
        # at once and select() would then never wake up for the rest.
        ready, _, _ = select.select([sys.stdin.fileno()], [], [], 1.0)
        if not ready:
            continue
        chunk = os.read(sys.stdin.fileno(), 4096)
        if not chunk:  # the test went away
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            words = raw.decode(errors="replace").split()
            if words[:1] == ["quit"]:
                quit_ = True
                break
            if words[:1] == ["dereg"] and len(words) == 4:
                t = threading.Thread(target=deregister, args=(words[1], words[2], int(words[3])))
                t.start()
                workers.append(t)
    for t in workers:
        t.join(10.0)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
