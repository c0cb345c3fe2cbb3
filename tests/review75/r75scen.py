"""review75's seeded scenarios (r75sim.py's driver): each ``build(seed)`` makes the
cluster, the real clients and the fault plan; ``run(name, seed)`` runs one and returns
(RFaults, problems)."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from r75sim import R_TIMINGS, RFaults, SessionProvider  # noqa: E402

from meshreg.core.mapping import responsible_node  # noqa: E402
from meshreg.model import ServiceKey  # noqa: E402

REPLAY = (
    "MESHREG_R75_SCENARIO={name} MESHREG_R75_SEED={seed} pytest -n 0 -p no:cacheprovider -s "
    "tests/review75/test_r75_sweep.py -k replay"
)


def owner_of(rs: RFaults, service: str) -> str:
    ids = tuple(sorted(rs.net.nodes))
    return responsible_node(ServiceKey("public", "DEFAULT_GROUP", service), ids)


def churn(rs: RFaults, p: SessionProvider, rng: random.Random, t0: float, t1: float,
          deregs: int = 3, reregs: int = 2) -> None:  # fmt: skip
    """Deregister a few of ``p``'s instances in [t0, t1], register some again later."""
    picks = rng.sample(p.insts, min(deregs, len(p.insts)))
    for inst in picks:
        t = rng.uniform(t0, t1)
        p.deregister_at(t, inst)
        if reregs > 0:
            reregs -= 1
            p.reregister_at(t + rng.uniform(0.02, 4.0), inst)


def base(name: str, seed: int, timing: str, n: int = 3, sessions: bool | None = None,
         providers: int = 3) -> tuple[RFaults, random.Random, list[SessionProvider]]:  # fmt: skip
    timings = R_TIMINGS[timing]
    rs = RFaults(name, seed, timings, n)
    rng = rs.rng
    ids = list(rs.net.nodes)
    services = [f"svc{i}" for i in range(6)]
    provs = []
    for k in range(providers):
        s = rng.random() < 0.5 if sessions is None else sessions
        mine = rng.sample(services, 3)
        first = ids[k % n]
        provs.append(rs.provider(f"p{k}", first, s, mine, 2, start=1.0 + 0.3 * k))
        rs.plan.append(f"p{k}@{first} {'session' if s else 'beats'} {mine}")
    for k in range(2):
        rs.consumer(f"c{k}", ids[(k + 1) % n], services)
    return rs, rng, provs


def _t0(rs: RFaults) -> float:
    return 10 * rs.timings.beat + 5.0


def scen_pause(seed: int, timing: str = "short", n: int = 3) -> RFaults:
    rs, rng, provs = base(f"pause-{timing}-{n}", seed, timing, n)
    h = rs.timings.health
    t0 = _t0(rs)
    p = rng.choice(provs)
    target = rng.choice(("server", "owner"))
    node = p.client.session.server.split(":")[0]
    node_id = rs.net.by_address[p.client.session.server].node_id
    if target == "owner":
        node_id = owner_of(rs, p.insts[0].key.service)
    length = h.evict_after + rng.uniform(1.0, 4.0)
    rs.pause(node_id, t0, length, None)
    rs.plan.append(f"target {target} of {p.name} ({node})")
    for q in provs:
        churn(rs, q, rng, t0 - 2.0, t0 + length + 3.0)
    rs.fault_end = t0 + length
    return rs


def scen_partition(seed: int, timing: str = "short", n: int = 3) -> RFaults:
    rs, rng, provs = base(f"partition-{timing}-{n}", seed, timing, n)
    h = rs.timings.health
    t0 = _t0(rs)
    p = rng.choice(provs)
    node_id = rng.choice([rs.net.by_address[p.client.session.server].node_id,
                          owner_of(rs, p.insts[0].key.service)])  # fmt: skip
    length = h.evict_after + rng.uniform(1.0, 6.0)
    rs.partition([node_id], t0, length)
    for q in provs:
        churn(rs, q, rng, t0 - 2.0, t0 + length + 3.0)
    rs.fault_end = t0 + length
    return rs


def scen_loss(seed: int, timing: str = "short", n: int = 3) -> RFaults:
    rs, rng, provs = base(f"loss-{timing}-{n}", seed, timing, n)
    t0 = _t0(rs)
    ids = list(rs.net.nodes)
    a, b = rng.sample(ids, 2)
    length = rng.uniform(10.0, 30.0)
    rs.oneway(a, b, rng.uniform(0.2, 0.6), t0, length)
    rs.oneway(b, a, rng.uniform(0.0, 0.3), t0, length)
    rs.delay(t0, length, rng.uniform(0.05, 0.3), rng.uniform(0.2, 1.5))
    for q in provs:
        churn(rs, q, rng, t0, t0 + length)
    rs.fault_end = t0 + length
    return rs


def scen_restart(seed: int, timing: str = "short", n: int = 3) -> RFaults:
    rs, rng, provs = base(f"restart-{timing}-{n}", seed, timing, n)
    t0 = _t0(rs)
    p = rng.choice(provs)
    node_id = rng.choice([rs.net.by_address[p.client.session.server].node_id,
                          owner_of(rs, p.insts[0].key.service)])  # fmt: skip
    down = rng.uniform(0.5, 12.0)
    rs.kill_restart(node_id, t0, down)
    for q in provs:
        churn(rs, q, rng, t0 - 1.0, t0 + down + 3.0)
    rs.fault_end = t0 + down
    return rs


def scen_stall(seed: int, timing: str = "default", n: int = 3) -> RFaults:
    """The review72-74 situation: the provider's server stalls ~1.3 s while the client
    fails over, and the caller deregisters / registers again right after the answers."""
    rs, rng, provs = base(f"stall-{timing}-{n}", seed, timing, n, providers=3)
    t0 = _t0(rs)
    for k in range(4):
        p = rng.choice(provs)
        node_id = rng.choice([rs.net.by_address[p.client.session.server].node_id,
                              owner_of(rs, p.insts[0].key.service)])  # fmt: skip
        at = t0 + 8.0 * k
        stall = rng.uniform(0.8, 1.6)
        rs.pause(node_id, at, stall, None)
        inst = rng.choice(p.insts)
        # the caller's writes while the node stalls: a deregister, a register again, a
        # deregister once more (each when the previous returns is modelled by short gaps)
        d0 = at + rng.uniform(0.0, 0.2)
        p.deregister_at(d0, inst)
        p.reregister_at(d0 + rng.uniform(0.01, 1.4), inst)
        p.deregister_at(d0 + rng.uniform(1.5, 3.0), inst)
    rs.fault_end = t0 + 8.0 * 4
    return rs


def scen_race(seed: int, timing: str = "default", n: int = 3) -> RFaults:
    """review72-74's races through the real session: the provider's server (or the
    instance's owner) stalls 0.8-1.6 s just as a caller writes an instance, the client
    fails over, and the caller's next write of it follows as soon as the first returns
    (deregister after register, register after deregister), sometimes twice."""
    rs, rng, provs = base(f"race-{timing}-{n}", seed, timing, n, providers=3)
    t0 = _t0(rs)
    for k in range(6):
        p = rng.choice(provs)
        inst = rng.choice(p.insts)
        at = t0 + 9.0 * k
        p.deregister_at(at - 3.0, inst)  # so that the chain may begin with a register
        first = rng.choice(("reg", "dereg"))
        ops = [first, "dereg" if first == "reg" else "reg"]
        if rng.random() < 0.5:
            ops.append(first)
        if first == "dereg":
            p.reregister_at(at - 1.5, inst)
        server = rs.net.by_address.get(p.client.session.server)
        target = rng.choice(("server", "owner"))
        stall = rng.uniform(0.8, 1.6)

        def begin(p=p, target=target, inst=inst, stall=stall) -> None:
            node_id = (
                rs.net.by_address[p.client.session.server].node_id
                if target == "server"
                else owner_of(rs, inst.key.service)
            )
            if rs.net.nodes[node_id].runtime is not None and not rs.net.is_paused(node_id):
                rs.net.pause(node_id)
                rs.net.at(rs.net.now + stall, rs.net.resume, node_id, None)

        del server
        rs.net.at(at, begin)
        p.chain_at(at + rng.uniform(0.0, 0.05), inst, ops, gap=0.0)
        rs.plan.append(f"{at:.0f}: stall {target} of {p.name} {stall:.2f}s, {inst.name} {ops}")
    rs.fault_end = t0 + 9.0 * 6
    return rs


def scen_close(seed: int, timing: str = "default", n: int = 3) -> RFaults:
    """A provider closes (``Client.close(3)``) while its server or its services' owner
    stalls 0.8-1.6 s, with a register of a new instance in flight or just answered."""
    rs, rng, provs = base(f"close-{timing}-{n}", seed, timing, n, providers=2)
    t0 = _t0(rs)
    ids = list(rs.net.nodes)
    closers = []
    for k in range(3):
        q = rs.provider(f"q{k}", rng.choice(ids), rng.random() < 0.5,
                        rng.sample([f"svc{i}" for i in range(6)], 2), 2, start=2.0 + k)  # fmt: skip
        closers.append(q)
    for k, q in enumerate(closers):
        at = t0 + 10.0 * k
        target = rng.choice(("server", "owner"))
        stall = rng.uniform(0.8, 1.6)
        inst = rng.choice(q.insts)

        def begin(q=q, target=target, inst=inst, stall=stall) -> None:
            node_id = (
                rs.net.by_address[q.client.session.server].node_id
                if target == "server"
                else owner_of(rs, inst.key.service)
            )
            if rs.net.nodes[node_id].runtime is not None and not rs.net.is_paused(node_id):
                rs.net.pause(node_id)
                rs.net.at(rs.net.now + stall, rs.net.resume, node_id, None)

        rs.net.at(at, begin)
        q.deregister_at(at - 3.0, inst)
        q.reregister_at(at + 0.01, inst)  # a register in flight into the stall
        close_at = at + rng.uniform(0.05, 1.5)
        q.close_at(close_at, 3.0)
        rs.plan.append(f"{at:.0f}: stall {target} of {q.name} {stall:.2f}s, register "
                       f"{inst.name}, close at {close_at:.2f}")  # fmt: skip
    rs.fault_end = t0 + 30.0
    return rs


def scen_kill_restart(seed: int, timing: str = "short", n: int = 0) -> RFaults:
    """F3's shape: a session (or beating) client is killed; a node other than the
    owner is down and restarts around the time its instances are evicted."""
    r = random.Random(f"r75-kr-{seed}")
    n = n or r.choice((3, 5))
    rs, rng, provs = base(f"kill-restart-{timing}-{n}", seed, timing, n, providers=2)
    ids = list(rs.net.nodes)
    h = rs.timings.health
    t0 = _t0(rs)
    sessions = r.random() < 0.7
    victim_client = rs.provider("pK", r.choice(ids), sessions, ["svc0", "svc1"], 2, start=2.0)
    kill_at = t0 + r.uniform(0.0, 1.0)
    victim_client.kill_at(kill_at)
    owner = owner_of(rs, "svc0")
    node_id = r.choice([i for i in ids if i != owner])
    down_at = kill_at - r.uniform(0.5, 3.0)
    up_at = kill_at + h.evict_after + r.uniform(-1.5, 1.0)
    rs.kill_restart(node_id, down_at, up_at - down_at)
    rs.plan.append(f"pK ({'session' if sessions else 'beats'}) killed at {kill_at:.2f}")
    rs.fault_end = up_at + 2.0
    return rs


def scen_client_cut(seed: int, timing: str = "short", n: int = 3) -> RFaults:
    """A provider's links to one node (its server, or the owner of its services) lose
    everything, or only the requests, or only the replies, for 0.5-12 s, while it
    deregisters and registers again (each as soon as the previous returned); the
    consumers' links too, sometimes."""
    rs, rng, provs = base(f"client-cut-{timing}-{n}", seed, timing, n, providers=3)
    t0 = _t0(rs)
    for k in range(4):
        p = rng.choice(provs)
        at = t0 + 12.0 * k
        inst = rng.choice(p.insts)
        mode = rng.choice(("both", "requests", "replies"))
        length = rng.choice((rng.uniform(0.5, 2.0), rng.uniform(2.0, 12.0)))
        target = rng.choice(("server", "owner"))

        def begin(p=p, target=target, inst=inst, mode=mode, length=length) -> None:
            node_id = (
                rs.net.by_address[p.client.session.server].node_id
                if target == "server"
                else owner_of(rs, inst.key.service)
            )
            rs.client_cut(p.client, node_id, mode, rs.net.now, length)

        rs.net.at(at, begin)
        ops = rng.choice((["dereg", "reg"], ["dereg", "reg", "dereg", "reg"], ["reg"]))
        if ops[0] == "reg":
            p.deregister_at(at - 3.0, inst)
        p.chain_at(at + rng.uniform(0.0, 1.0), inst, ops)
        if rng.random() < 0.3:
            c = rng.choice(rs.consumers)
            rs.net.at(at, lambda c=c, length=length, mode=mode: rs.client_cut(
                c.client, rs.net.by_address[c.client.session.server].node_id, mode,
                rs.net.now, length))  # fmt: skip
        rs.plan.append(f"{at:.0f}: cut {p.name}'s {target} {mode} {length:.1f}s, "
                       f"{inst.name} {ops}")  # fmt: skip
    rs.fault_end = t0 + 12.0 * 4
    return rs


def scen_random(seed: int, timing: str = "short", n: int = 0) -> RFaults:
    r = random.Random(f"r75-plan-{seed}")
    n = n or r.choice((3, 3, 5))
    rs, rng, provs = base(f"random-{timing}-{n}", seed, timing, n)
    ids = list(rs.net.nodes)
    h = rs.timings.health
    t0 = _t0(rs)
    t = t0
    for _ in range(r.randint(2, 4)):
        kind = r.choice(("pause", "partition", "loss", "restart", "stall"))
        node_id = r.choice(ids)
        if kind == "pause":
            length = r.choice((r.uniform(0.5, 2.0), h.evict_after + r.uniform(0.5, 4.0)))
            rs.pause(node_id, t, length, None)
        elif kind == "partition":
            length = r.uniform(2.0, h.evict_after + 6.0)
            rs.partition([node_id], t, length)
        elif kind == "loss":
            length = r.uniform(5.0, 20.0)
            rs.oneway(node_id, r.choice([i for i in ids if i != node_id]), r.uniform(0.2, 0.6),
                      t, length)  # fmt: skip
        elif kind == "restart":
            length = r.uniform(0.5, 10.0)
            rs.kill_restart(node_id, t, length)
        else:
            length = r.uniform(0.8, 1.6)
            rs.pause(node_id, t, length, None)
        t += length + r.uniform(0.5, 8.0)
    for q in provs:
        churn(rs, q, rng, t0, t, deregs=3, reregs=2)
    # one provider closes or is killed (a fourth, started early)
    extra = rs.provider("pX", r.choice(ids), r.random() < 0.5, ["svc0", "svc5"], 2, start=2.0)
    when = r.uniform(t0, t)
    if r.random() < 0.5:
        extra.close_at(when, 3.0)
        rs.plan.append(f"pX closes at {when:.1f}")
    else:
        extra.kill_at(when)
        rs.plan.append(f"pX killed at {when:.1f}")
    rs.fault_end = t
    return rs


SCENARIOS: dict[str, Callable[[int], RFaults]] = {
    "pause-short": lambda s: scen_pause(s, "short", 3),
    "pause-short-5": lambda s: scen_pause(s, "short", 5),
    "pause-default": lambda s: scen_pause(s, "default", 3),
    "partition-short": lambda s: scen_partition(s, "short", 3),
    "partition-short-5": lambda s: scen_partition(s, "short", 5),
    "partition-default": lambda s: scen_partition(s, "default", 3),
    "loss-short": lambda s: scen_loss(s, "short", 3),
    "restart-short": lambda s: scen_restart(s, "short", 3),
    "restart-short-5": lambda s: scen_restart(s, "short", 5),
    "stall-default": lambda s: scen_stall(s, "default", 3),
    "stall-short": lambda s: scen_stall(s, "short", 3),
    "random-short": lambda s: scen_random(s, "short"),
    "race-default": lambda s: scen_race(s, "default", 3),
    "race-short": lambda s: scen_race(s, "short", 3),
    "race-default-5": lambda s: scen_race(s, "default", 5),
    "close-default": lambda s: scen_close(s, "default", 3),
    "close-short": lambda s: scen_close(s, "short", 3),
    "kill-restart-short": lambda s: scen_kill_restart(s, "short"),
    "client-cut-short": lambda s: scen_client_cut(s, "short", 3),
    "random-default": lambda s: scen_random(s, "default"),
    "client-cut-default": lambda s: scen_client_cut(s, "default", 3),
}


# -- review78: momentary and lasting minorities (the "direct" refusal, review75 F1/F2) --------
def scen_down2(seed: int, timing: str = "short") -> RFaults:
    """5 nodes, 2 of them down for 20-35 s (the 3 left are a bare majority; with one more
    out, every node sees a minority); meanwhile one of the 3 is cut off, restarted or
    paused, and the providers churn."""
    rs, rng, provs = base(f"down2-{timing}-5", seed, timing, 5)
    h = rs.timings.health
    t0 = _t0(rs)
    ids = list(rs.net.nodes)
    down = rng.sample(ids, 2)
    length = rng.uniform(20.0, 35.0)
    for d in down:
        rs.restart(d, t0 + rng.uniform(0.0, 1.0), length)
    rest = [i for i in ids if i not in down]
    kind = rng.choice(("partition", "partition", "restart", "pause", "none"))
    at = t0 + rng.uniform(2.0, 8.0)
    x = rng.choice(rest)
    if kind == "partition":
        rs.partition([x], at, rng.uniform(2.0, h.evict_after + 4.0))
    elif kind == "restart":
        rs.restart(x, at, rng.uniform(0.5, 6.0))
    elif kind == "pause":
        rs.pause(x, at, rng.uniform(0.5, h.evict_after + 2.0), None)
    rs.plan.append(f"down {down}, then {kind} {x}")
    for q in provs:
        churn(rs, q, rng, t0, t0 + length)
    rs.fault_end = t0 + length + 1.0
    return rs


def scen_restart_cut(seed: int, timing: str = "short", n: int = 3) -> RFaults:
    """A partition (one node, or two of five, cut off) during which a node restarts: one
    of the cut-off ones (it starts hearing nobody, or only its fellow: a minority from its
    first turn), or one of the majority (it hears its peers one by one); sometimes the
    partition heals just as the restarted node turns ready."""
    rs, rng, provs = base(f"restart-cut-{timing}-{n}", seed, timing, n)
    h = rs.timings.health
    t0 = _t0(rs)
    ids = list(rs.net.nodes)
    size = 1 if n == 3 else rng.choice((1, 2))
    cut = rng.sample(ids, size)
    length = rng.uniform(4.0, h.evict_after + 6.0)
    rs.partition(cut, t0, length)
    side = rng.choice(("cut", "majority"))
    who = rng.choice(cut if side == "cut" else [i for i in ids if i not in cut])
    at = t0 + rng.uniform(0.0, length - 1.0)
    down = rng.uniform(0.3, 3.0)
    rs.restart(who, at, down)
    rs.plan.append(f"restart {side} {who} in the partition")
    for q in provs:
        churn(rs, q, rng, t0 - 1.0, t0 + length + 3.0)
    rs.fault_end = max(t0 + length, at + down) + 1.0
    return rs


def scen_deaf(seed: int, timing: str = "short", n: int = 3) -> RFaults:
    """A node hears none of its peers (everything to it lost) or is heard by none
    (everything from it lost) for 3 s to evict_after + 6 s: one-way, so the two sides
    disagree on who is up (the deaf node sees itself alone: a minority; the others may
    still see it up).  Counted as cut off (faulted) by the probe, like a partition."""
    rs, rng, provs = base(f"deaf-{timing}-{n}", seed, timing, n)
    h = rs.timings.health
    t0 = _t0(rs)
    ids = list(rs.net.nodes)
    x = rng.choice(ids)
    length = rng.uniform(3.0, h.evict_after + 6.0)
    mode = rng.choice(("deaf", "mute"))
    others = [i for i in ids if i != x]

    def begin() -> None:
        for o in others:
            rs.net.oneway_loss[(o, x) if mode == "deaf" else (x, o)] = 1.0
        rs.minority = frozenset([x])
        rs.active["deaf"] = rs.net.now
        rs.net.log(f"DEAF {x} {mode}")

    def end() -> None:
        for o in others:
            rs.net.oneway_loss.pop((o, x) if mode == "deaf" else (x, o), None)
        rs.minority = frozenset()
        rs._ended("deaf", [x])

    rs.net.at(t0, begin)
    rs.net.at(t0 + length, end)
    rs.plan.append(f"{mode} {x} {t0:.1f}+{length:.1f}")
    for q in provs:
        churn(rs, q, rng, t0 - 1.0, t0 + length + 3.0)
    rs.fault_end = t0 + length
    return rs


def scen_two(seed: int, timing: str = "short") -> RFaults:
    """A cluster of two configured members: either node paused, cut off from the other,
    restarted (each alone sees 1 of 2: no majority)."""
    rs, rng, provs = base(f"two-{timing}", seed, timing, 2)
    h = rs.timings.health
    t0 = _t0(rs)
    ids = list(rs.net.nodes)
    t = t0
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(("partition", "restart", "pause"))
        x = rng.choice(ids)
        if kind == "partition":
            length = rng.uniform(2.0, h.evict_after + 5.0)
            rs.partition([x], t, length)
        elif kind == "restart":
            length = rng.uniform(0.5, 10.0)
            rs.restart(x, t, length)
        else:
            length = rng.uniform(0.5, h.evict_after + 2.0)
            rs.pause(x, t, length, None)
        t += length + rng.uniform(1.0, 8.0)
    for q in provs:
        churn(rs, q, rng, t0, t)
    rs.fault_end = t
    return rs


def scen_rolling(seed: int, timing: str = "short", n: int = 5) -> RFaults:
    """Every node restarted in turn (down 0.3-3 s, the next 0.5-6 s after the previous
    is back): member views lag at each restart (a restarted node hears its peers one by
    one; its peers see it come and go)."""
    rs, rng, provs = base(f"rolling-{timing}-{n}", seed, timing, n)
    t0 = _t0(rs)
    ids = list(rs.net.nodes)
    rng.shuffle(ids)
    t = t0
    for x in ids:
        down = rng.uniform(0.3, 3.0)
        rs.restart(x, t, down)
        t += down + rng.uniform(0.5, 6.0)
    for q in provs:
        churn(rs, q, rng, t0, t)
    rs.fault_end = t
    return rs


SCENARIOS.update({
    "down2-short": lambda s: scen_down2(s, "short"),
    "down2-default": lambda s: scen_down2(s, "default"),
    "restart-cut-short": lambda s: scen_restart_cut(s, "short", 3),
    "restart-cut-short-5": lambda s: scen_restart_cut(s, "short", 5),
    "deaf-short": lambda s: scen_deaf(s, "short", 3),
    "deaf-short-5": lambda s: scen_deaf(s, "short", 5),
    "two-short": lambda s: scen_two(s, "short"),
    "two-default": lambda s: scen_two(s, "default"),
    "rolling-short-5": lambda s: scen_rolling(s, "short", 5),
    "rolling-short-3": lambda s: scen_rolling(s, "short", 3),
})  # fmt: skip


def run(name: str, seed: int) -> tuple[RFaults, list[str]]:
    rs = SCENARIOS[name](seed)
    h = rs.timings.health
    end = rs.fault_end + h.evict_after + 40.0
    problems = rs.run_all(end)
    return rs, problems


def message(rs: RFaults, name: str, seed: int, problems: list[str]) -> str:
    lines = [f"{name} seed {seed}: {rs.summary()}"] + [f"  {p}" for p in problems[:20]]
    lines.append("replay: " + REPLAY.format(name=name, seed=seed))
    if rs.net.trace is not None and os.environ.get("MESHREG_SIM_TRACE"):
        with open(os.environ["MESHREG_SIM_TRACE"], "w", encoding="utf-8") as fh:
            fh.write("\n".join(rs.net.trace + [f"PROBLEM {p}" for p in problems]) + "\n")
        lines.append(f"trace written to {os.environ['MESHREG_SIM_TRACE']}")
    return "\n".join(lines)
