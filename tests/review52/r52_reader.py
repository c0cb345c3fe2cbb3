"""A reading client fleet in its own process (review52 F3): CONNS connections, each
keeping IN_FLIGHT `instances` requests of one service in flight and reading every reply,
for SECONDS; prints how many replies it read.  Usage: r52_reader.py PORT SERVICE CONNS
IN_FLIGHT SECONDS [NAMESPACE CLIENT_KEY_FILE SERVER_KEY_FILE]"""

from __future__ import annotations

import sys
import time

import msgpack
import zmq
import zmq.auth


def main() -> None:
    port, service = int(sys.argv[1]), sys.argv[2]
    conns, in_flight, seconds = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    namespace = sys.argv[6] if len(sys.argv) > 6 else "public"
    curve = None
    if len(sys.argv) > 8:
        pub, sec = zmq.auth.load_certificate(sys.argv[7])
        server, _ = zmq.auth.load_certificate(sys.argv[8])
        curve = (pub, sec, server)
    ctx = zmq.Context.instance()
    poller = zmq.Poller()
    socks = []
    body = msgpack.packb(
        {"v": 1, "id": 1, "op": "instances", "namespace": namespace, "service": service}
    )
    for _ in range(conns):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            s.curve_publickey, s.curve_secretkey, s.curve_serverkey = curve
        s.connect(f"tcp://127.0.0.1:{port}")
        for _ in range(in_flight):
            s.send_multipart([b"", body])
        poller.register(s, zmq.POLLIN)
        socks.append(s)
    read = 0
    CONNS_STARTED_AFTER = conns  # noqa: N806 (one reply per connection, about)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for s, _ in poller.poll(100):
            s.recv_multipart()
            read += 1
            if read == CONNS_STARTED_AFTER:
                print("reading", flush=True)  # the test times its victim from here
            s.send_multipart([b"", body])
    if read < conns:
        print("reading", flush=True)
    print(read, flush=True)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
