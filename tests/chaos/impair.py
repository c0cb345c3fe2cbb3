"""User-space packet impairment (loss and delay) over NFQUEUE, for kernels without sch_netem.

Run inside a network namespace after an iptables rule sends packets to a queue, e.g.::

    iptables-legacy -A OUTPUT -o eth0 -j NFQUEUE --queue-num 0 --queue-bypass
    python impair.py --queue 0 --loss 0.2 --delay-min 0.010 --delay-max 0.030 --seed 7

It speaks nfnetlink_queue over a raw netlink socket (no library): it binds the queue,
asks for the first 40 bytes of every packet (the IPv4 header and the ports), and answers
each packet with a verdict. A packet is dropped with probability ``loss``; the others are
accepted after a uniform delay in [delay_min, delay_max]. Delay is reorder-free per flow
(protocol, addresses, ports): a packet is never released before an earlier packet of the
same flow, so TCP sees delay and loss but no reordering (netem with jitter would reorder).
Verdicts may be given out of order across flows; the kernel matches them by packet id.

With ``--queue-bypass`` on the rule, packets pass untouched when no handler is bound, so a
killed handler never blackholes a namespace. Counters go to stderr every few seconds and
at exit (SIGTERM/SIGINT). Pure standard library: it runs in any Python >= 3.10.
"""

from __future__ import annotations

import argparse
import heapq
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_PACKET = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_PAYLOAD = 10
NF_DROP = 0
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NLMSG_DONE = 3
COPY_RANGE = 40  # IPv4 header without options (20) + ports (4), with room for options


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _message(msg_type: int, queue: int, attrs: bytes, seq: int, flags: int = 0) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    header = struct.pack(
        "=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, NLM_F_REQUEST | flags, seq, 0
    )
    return header + body


def _attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, pos)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[pos + 4 : pos + length]
        pos += (length + 3) & ~3
    return out


def _flow(payload: bytes) -> tuple[int, bytes, bytes, int, int]:
    """(protocol, src, dst, sport, dport) of an IPv4 packet; zeros when it cannot be read."""
    if len(payload) < 20 or payload[0] >> 4 != 4:
        return (0, b"", b"", 0, 0)
    ihl = (payload[0] & 0x0F) * 4
    proto = payload[9]
    ports = (0, 0)
    if proto in (6, 17) and len(payload) >= ihl + 4:
        ports = struct.unpack_from("!HH", payload, ihl)
    return (proto, payload[12:16], payload[16:20], ports[0], ports[1])


class Impairer:
    def __init__(self, queue: int, loss: float, dmin: float, dmax: float, seed: int) -> None:
        self.queue = queue
        self.loss = loss
        self.dmin = dmin
        self.dmax = dmax
        self.rng = random.Random(seed)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        except OSError:
            pass
        self.sock.bind((0, 0))
        self.seq = 0
        self.pending: list[tuple[float, int, int]] = []  # (release time, order, packet id)
        self.flow_last: dict[tuple[int, bytes, bytes, int, int], float] = {}
        self.order = 0
        self.counts = {"seen": 0, "dropped": 0, "delayed": 0, "errors": 0}

    def _send(self, msg: bytes) -> None:
        self.sock.send(msg)

    def _request(self, msg_type: int, attrs: bytes) -> None:
        self.seq += 1
        self._send(_message(msg_type, self.queue, attrs, self.seq, NLM_F_ACK))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.sock], [], [], 0.5)
            if not ready:
                continue
            data = self.sock.recv(65536)
            pos = 0
            while pos + 16 <= len(data):
                length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, pos)
                if kind == NLMSG_ERROR and seq == self.seq:
                    (err,) = struct.unpack_from("=i", data, pos + 16)
                    if err != 0:
                        raise OSError(-err, f"nfnetlink_queue config failed: errno {-err}")
                    return
                pos += (length + 3) & ~3
        raise TimeoutError("no answer from nfnetlink_queue")

    def bind(self) -> None:
        cmd = struct.pack("=BxH", NFQNL_CFG_CMD_BIND, socket.htons(socket.AF_UNSPEC))
        self._request(NFQNL_MSG_CONFIG, _attr(NFQA_CFG_CMD, cmd))
        params = struct.pack("!IB", COPY_RANGE, NFQNL_COPY_PACKET)
        self._request(NFQNL_MSG_CONFIG, _attr(NFQA_CFG_PARAMS, params))
        self._request(NFQNL_MSG_CONFIG, _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 8192)))

    def _verdict(self, packet_id: int, verdict: int) -> bytes:
        self.seq += 1
        hdr = struct.pack("!II", verdict, packet_id)
        return _message(NFQNL_MSG_VERDICT, self.queue, _attr(NFQA_VERDICT_HDR, hdr), self.seq)

    def _on_packet(self, attrs: dict[int, bytes], now: float, out: list[bytes]) -> None:
        hdr = attrs.get(NFQA_PACKET_HDR)
        if hdr is None or len(hdr) < 4:
            return
        (packet_id,) = struct.unpack_from("!I", hdr)
        self.counts["seen"] += 1
        if self.loss > 0 and self.rng.random() < self.loss:
            self.counts["dropped"] += 1
            out.append(self._verdict(packet_id, NF_DROP))
            return
        flow = _flow(attrs.get(NFQA_PAYLOAD, b""))
        release = now + self.rng.uniform(self.dmin, self.dmax)
        release = max(release, self.flow_last.get(flow, 0.0))  # reorder-free per flow
        self.flow_last[flow] = release
        if len(self.flow_last) > 4096:  # bounded: forget flows with nothing pending
            self.flow_last = {f: r for f, r in self.flow_last.items() if r > now}
        if release <= now:
            out.append(self._verdict(packet_id, NF_ACCEPT))
            return
        self.counts["delayed"] += 1
        self.order += 1
        heapq.heappush(self.pending, (release, self.order, packet_id))

    def run(self, stop: list[bool], report_every: float = 5.0) -> None:
        next_report = time.monotonic() + report_every
        while not stop[0]:
            now = time.monotonic()
            out: list[bytes] = []
            while self.pending and self.pending[0][0] <= now:
                _, _, packet_id = heapq.heappop(self.pending)
                out.append(self._verdict(packet_id, NF_ACCEPT))
            wait = 0.2 if not self.pending else max(0.0, self.pending[0][0] - now)
            if out:
                self._flush(out)
                continue
            try:
                ready, _, _ = select.select([self.sock], [], [], min(wait, 0.2))
            except InterruptedError:
                continue
            if ready:
                self._receive(out)
                self._flush(out)
            if now >= next_report:
                self.report()
                next_report = now + report_every
        # accept whatever is still held, so nothing stays queued in the kernel
        self._flush([self._verdict(pid, NF_ACCEPT) for _, _, pid in self.pending])
        self.report()

    def _receive(self, out: list[bytes]) -> None:
        for _ in range(64):  # bounded: at most 64 reads before releasing due packets
            try:
                data = self.sock.recv(1 << 17, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                self.counts["errors"] += 1
                return
            now = time.monotonic()
            pos = 0
            while pos + 16 <= len(data):
                length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, pos)
                if length < 16:
                    break
                if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    self._on_packet(_attrs(data[pos + 20 : pos + length]), now, out)
                elif kind == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, pos + 16)
                    if err:
                        self.counts["errors"] += 1
                pos += (length + 3) & ~3

    def _flush(self, out: list[bytes]) -> None:
        for msg in out:
            try:
                self._send(msg)
            except OSError:
                self.counts["errors"] += 1

    def report(self) -> None:
        print(f"impair {self.counts} held={len(self.pending)}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queue", type=int, default=0)
    p.add_argument("--loss", type=float, default=0.0, help="drop probability, 0..1")
    p.add_argument("--delay-min", type=float, default=0.0, help="seconds")
    p.add_argument("--delay-max", type=float, default=0.0, help="seconds")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not (0 <= args.loss <= 1 and 0 <= args.delay_min <= args.delay_max <= 5):
        p.error("need 0 <= loss <= 1 and 0 <= delay-min <= delay-max <= 5")
    imp = Impairer(args.queue, args.loss, args.delay_min, args.delay_max, args.seed)
    imp.bind()
    stop = [False]

    def on_signal(_sig: int, _frame: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("impair bound", flush=True)
    imp.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
