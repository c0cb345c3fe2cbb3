"""review75 F1/F2, with real processes and sockets: a client's writes sent straight to a
service's owner that a partition cut off from the majority.  Such a write says
``"direct": true``; the cut-off owner refuses it (``UNAVAILABLE``, ``"written": false``,
``stats.direct_refused``) and the client forgets its view and sends it through its
server, on the majority side (PROTOCOL.md 2.1, "Direct").  Before, the cut-off owner
answered OK alone: the majority heard none of the beats (it marked the live instances
unhealthy) and missed a registration, until the client's view refresh (VIEW_INTERVAL,
10 s).  The neighbouring case, the client's own server cut off: test_cut_off_server.

Lab (root, iproute2, iptables; skipped otherwise): namespaces n1..n3 run the nodes, n4 the
provider (direct_provider.py) and a sampler (cutoff_sampler.py); n1 <-> {n2, n3} dropped
both ways (iptables in each namespace), n4 reaches all.  The provider's two clients are
given n2, n3, n1 (``server_order="listed"``: their server is n2, on the majority side) and
hold instances of a service owned by n1: A beats per instance (10.20.0.1:1000, :1001), B
holds a session (10.20.0.2:2000); the provider is ready once both clients' cluster views
name every member and their connections to n1 are open.  Once n1 sees no majority, B
registers :2001 and deregisters :2000, and A keeps beating: the clients' views still name
n1 the owner (they are refreshed every 10 s), so the register and A's beats go straight
to n1, which refuses them.  Asserted: (a) :2001 is listed healthy and :2000 gone on n2 and
n3 within NEW_BOUND of the writes, during the cut; (b) A's live instances are listed
healthy on n2 and n3 in every sample of the cut; (c) n1's ``stats`` (the CLI, from n4)
counts ``direct_refused`` > 0; (d) after the heal every node lists the same instances,
all healthy, within HEAL_BOUND.  Without the refusal (disabled in core/distro, or the
client sending no ``direct``: measured) (a), (b) and (c) fail: :2001 on n1 alone and
:2000 still on n2/n3 after 3 s; direct_refused 0; A's beats, taken by n1 alone, never
heard on the majority, which listed A's instances unhealthy from 6.2-6.4 s into the cut.

Timings in the product's proportions: check 0.5, unhealthy 5, evict 10, peer timeout 1,
renewals and beats 0.5 s.  About 15 s (17 s with pytest's start).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import netlab  # noqa: E402
from helpers import wait_until  # noqa: E402

from meshreg.core.mapping import responsible_node  # noqa: E402
from meshreg.model import ServiceKey  # noqa: E402

# s: the cut lasts > peer timeout (1) + unhealthy_after (5) + a check (0.5): beats the
# majority never heard (taken by the cut-off owner) show as unhealthy there (at 6.3 s into
# the cut, with the refusal disabled), with a margin
CUT = 8.0
NEW_BOUND = 3.0  # s from B's register (deregister) returning to :2001 (no :2000) on n2, n3
HEAL_BOUND = 15.0  # s from the heal to the same list, all healthy, on every node
VIEW_MARGIN = 8.0  # s from ready within which B registers: its view still names n1
A_LIVE = {"10.20.0.1:1000", "10.20.0.1:1001"}
OLD_B, NEW_B = "10.20.0.2:2000", "10.20.0.2:2001"


def _owned_by(addrs: list[str], owner: str) -> str:
    for k in range(10_000):
        name = f"direct-svc-{k}"
        if responsible_node(ServiceKey("public", "DEFAULT_GROUP", name), addrs) == owner:
            return name
    raise AssertionError(f"no service name owned by {owner}")


def _samples(path: Path) -> list[tuple[float, str, str, dict[str, bool] | None]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(tuple(json.loads(line)))
        except ValueError:  # a line being written
            continue
    return out  # type: ignore[return-value]


def _latest(path: Path, after: float) -> dict[str, dict[str, bool] | None]:
    """Each node's latest answer sampled at or after ``after``."""
    return {node: listing for t, node, _s, listing in _samples(path) if t >= after}


def _say(prov: netlab.Proc, line: str, timeout: float) -> str:
    assert prov.popen.stdin is not None
    prov.popen.stdin.write(f"{line}\n".encode())
    prov.popen.stdin.flush()
    answer = netlab.read_line(prov, timeout)
    assert answer is not None and not answer.startswith("err"), (
        f"provider, {line!r}: {answer!r}\n{prov.log_tail()}"
    )
    return answer


@pytest.mark.chaos
@pytest.mark.timeout(120)
def test_a_write_sent_straight_to_a_cut_off_owner_reaches_the_majority(
    tmp_path: Path,
) -> None:
    reason = netlab.unavailable_reason() or netlab.impair_unavailable_reason()
    if reason:
        pytest.skip(reason)
    ipt = netlab.iptables_command()
    assert ipt is not None
    lab = netlab.Lab(4, tmp_path)
    rules: list[tuple[int, list[str]]] = []
    samples = tmp_path / "samples.jsonl"
    refused: int | None = None
    problems: list[str] = []  # (a)..(d), each that failed: all are told at the end
    took = converged = None
    try:
        lab.up()
        addrs = [f"{lab.addresses[i]}:7800" for i in range(3)]
        majority = set(addrs[1:])
        service = _owned_by(addrs, addrs[0])
        peers = sum((["--peer", a] for a in addrs), [])
        for j in range(3):
            lab.spawn(j, f"node{j}", [
                sys.executable, "-m", "meshreg", "node", "--host", lab.addresses[j],
                "--port", "7800", *peers, "--check-interval", "0.5", "--unhealthy-after", "5",
                "--evict-after", "10", "--peer-timeout", "1", "--insecure",
                "--data-dir", str(tmp_path / f"d{j}"),
            ])  # fmt: skip
        # n2 first: the clients' server; n1 last (a client that fails over moves to n3)
        servers = ",".join([addrs[1], addrs[2], addrs[0]])
        prov = lab.spawn(3, "provider", [
            sys.executable, str(HERE / "direct_provider.py"), "--servers", servers,
            "--service", service, "--max", "100",
        ], pipe=True)  # fmt: skip
        line = netlab.read_line(prov, 45)
        assert line == f"ready {addrs[1]} {addrs[1]}", f"provider: {line!r}\n{prov.log_tail()}"
        ready = time.monotonic()
        lab.spawn(3, "sampler", [sys.executable, str(HERE / "cutoff_sampler.py"), ",".join(addrs),
                  service, "60", str(samples)])  # fmt: skip
        before = {*A_LIVE, OLD_B}

        def everywhere(expected: set[str], nodes: set[str], since: float) -> bool:
            latest = _latest(samples, since)
            return all(
                (listing := latest.get(n)) is not None
                and set(listing) == expected
                and all(listing.values())
                for n in nodes
            )

        wait_until(lambda: everywhere(before, set(addrs), ready), 20, 0.2,
                   f"{sorted(before)} healthy on every node")  # fmt: skip
        cut = time.monotonic()
        for x, y in ((0, 1), (0, 2), (1, 0), (2, 0)):
            rule = ["INPUT", "-i", "eth0", "-s", lab.addresses[y], "-j", "DROP"]
            netlab.run("ip", "netns", "exec", lab.namespaces[x], ipt, "-A", *rule)
            rules.append((x, rule))
        _say(prov, f"minority {addrs[0]}", 15)  # n1 sees no majority: it refuses
        assert time.monotonic() - ready < VIEW_MARGIN, (
            f"setup too slow: {time.monotonic() - ready:.1f} s since the provider was ready; "
            "the clients' cluster views (refreshed every 10 s) may no longer name n1 the owner"
        )
        _say(prov, "reg 2001", 10)
        _say(prov, "dereg 2000", 10)
        written = time.monotonic()
        after = {*A_LIVE, NEW_B}
        try:  # (a)
            took = wait_until(lambda: everywhere(after, majority, written) and time.monotonic(),
                              NEW_BOUND, 0.1) - written  # fmt: skip
        except AssertionError:
            problems.append(
                f"(a) not {sorted(after)}, all healthy, on n2 and n3 within {NEW_BOUND:g} s of "
                f"B's register and deregister during the cut: {_latest(samples, written)}"
            )
        stats = netlab.run("ip", "netns", "exec", lab.namespaces[3], sys.executable, "-m",
                           "meshreg", "stats", "-s", addrs[0], "--json", timeout=20)  # fmt: skip
        refused = json.loads(stats.stdout)["direct_refused"]  # (c)
        heal = cut + CUT
        wait_until(lambda: time.monotonic() >= heal, CUT + 5, 0.1, "the end of the cut")
        for x, rule in rules:
            netlab.run("ip", "netns", "exec", lab.namespaces[x], ipt, "-D", *rule)
        rules.clear()
        healed = time.monotonic()
        try:  # (d)
            wait_until(lambda: everywhere(after, set(addrs), healed), HEAL_BOUND, 0.2)
            converged = time.monotonic() - healed
        except AssertionError:
            problems.append(
                f"(d) not {sorted(after)}, all healthy, on every node within {HEAL_BOUND:g} s "
                f"of the heal: {_latest(samples, healed)}"
            )
    finally:
        for x, rule in rules:
            netlab.run("ip", "netns", "exec", lab.namespaces[x], ipt, "-D", *rule, check=False)
        log = prov.log_tail(40) if "prov" in locals() else ""
        lab.close()
    if not refused:
        problems.append(
            f"(c) n1, cut off, refused no write sent straight to it (direct_refused={refused})"
        )
    bad: dict[tuple[str, str], list[float]] = {}
    checked = 0
    for t, node, _svc, listing in _samples(samples):
        if node not in majority or listing is None or not cut <= t <= heal:
            continue
        checked += 1
        for inst in A_LIVE:
            if listing.get(inst) is not True:
                state = "missing" if inst not in listing else "unhealthy"
                bad.setdefault((node, f"{inst} {state}"), []).append(round(t - cut, 1))
    assert checked > 30, f"too few samples of the majority during the cut ({checked})"
    if bad:
        problems.append(
            f"(b) A's live instances, beating straight to their owner n1 cut {CUT:g} s from "
            "n2/n3: not listed healthy on the majority, seconds after the cut: "
            + "; ".join(
                f"{n} {i}: {v[0]}..{v[-1]} ({len(v)} samples)" for (n, i), v in sorted(bad.items())
            )
        )
    assert not problems, "\n".join(problems) + f"\nprovider log:\n{log}"
    print(f"direct_refused on n1: {refused}; new list on n2, n3 {took:.1f} s after the writes; "
          f"converged {converged:.1f} s after the heal")  # fmt: skip
