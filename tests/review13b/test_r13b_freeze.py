"""review13b: writes while the service's owner is frozen (SIGSTOP), from outside."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from helpers import NodeProcess, holds_for, start_all, wait_until
from util13b import (
    cluster_nodes,
    owner_of,
    procs_fixture,  # noqa: F401 (the procs fixture)
    ready,
    views,
)

from meshreg import Client, OutcomeUnknownError

FAST = {"beat_interval": 0.3, "timeout": 5.0, "attempt_timeout": 1.0}


def test_clear_after_drain_through_another_node_while_owner_frozen_wins(
    procs: list[NodeProcess],
) -> None:
    """Drain X through one node, then (after it returned) clear the override through
    another, while the owner is frozen: the later clear must win everywhere."""
    nodes = _cluster(procs)
    with Client([nodes[0].address], **FAST) as p:
        p.register("clr", "10.6.1.1", 1)
        p.register("clr", "10.6.1.2", 2)
        wait_until(lambda: all(len(v) == 2 for v in views(nodes, "clr")), timeout=10)
        owner = owner_of(nodes)
        others = [n for n in nodes if n is not owner]
        owner.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        took = []
        try:
            with Client([others[0].address]) as op:
                op.set_instance("clr", "10.6.1.1", 1, enabled=False)
            took.append(round(time.monotonic() - t0, 2))
            with Client([others[1].address]) as op:
                op.set_instance("clr", "10.6.1.1", 1, clear=True)
            took.append(round(time.monotonic() - t0, 2))
        finally:
            owner.signal(signal.SIGCONT)

        def settled() -> bool:
            return all(v["10.6.1.1:1"][0] is True for v in views(nodes, "clr"))

        try:
            wait_until(settled, timeout=15)
        except AssertionError:
            late = []
            for n in nodes:
                with Client([n.address], timeout=2) as sc:
                    st = sc.stats()
                late.append((n is owner, st.get("late_writes"), st["usage"]["overrides"]))
            raise AssertionError(
                f"clear lost (calls returned at {took} s after the freeze): {views(nodes, 'clr')}"
                f"; (is owner, late_writes, overrides) per node: {late}"
            ) from None


@pytest.mark.parametrize("servers", ["one_each", "all_three"])
def test_deregister_after_register_during_short_owner_freeze_no_zombie(
    procs: list[NodeProcess], servers: str
) -> None:
    """Owner frozen; register X (returns OK), then deregister X (returns OK), then the
    owner resumes at once (well within peer_timeout). X must stay deregistered."""
    nodes = _cluster(procs)
    with Client([nodes[0].address], beat_interval=0.3) as seed:
        seed.register("zmb2", "10.5.1.9", 9)
        wait_until(lambda: all(len(v) == 1 for v in views(nodes, "zmb2")), timeout=10)
        owner = owner_of(nodes)
        o = [n for n in nodes if n is not owner]
        every = [n.address for n in nodes]
        first = [o[0].address] if servers == "one_each" else every
        second = [o[1].address] if servers == "one_each" else every
        owner.signal(signal.SIGSTOP)
        try:
            with Client(first, sessions=False) as c1:
                c1.register("zmb2", "10.5.1.1", 1)
            with Client(second, sessions=False) as c2:
                c2.deregister("zmb2", "10.5.1.1", 1)
        finally:
            owner.signal(signal.SIGCONT)
        wait_until(
            lambda: all("10.5.1.1:1" not in v for v in views(nodes, "zmb2")),
            timeout=10,
            what="deregistered everywhere",
        )
        holds_for(
            lambda: all("10.5.1.1:1" not in v for v in views(nodes, "zmb2")),
            5,
            what="no zombie register of zmb2 on any node",
        )


def _cluster(procs: list[NodeProcess]) -> list[NodeProcess]:
    nodes = cluster_nodes(3)
    procs.extend(nodes)
    start_all(nodes)
    wait_until(lambda: ready(nodes), timeout=30, what="cluster")
    return nodes


@pytest.mark.parametrize(
    "order", ["weight_then_drain", "drain_then_weight", "concurrent", "control_no_freeze"]
)
def test_drain_and_weight_set_through_two_nodes_while_owner_frozen_both_kept(
    procs: list[NodeProcess], order: str
) -> None:
    """An operator drains X through one node and re-weights it through another while the
    service's owner is frozen; both calls return OK. After the owner resumes, every node
    must show X drained AND weighted (two writes, each acknowledged)."""
    nodes = _cluster(procs)
    with Client([nodes[0].address], **FAST) as p:
        p.register("frz", "10.6.0.1", 1)
        p.register("frz", "10.6.0.2", 2)
        wait_until(lambda: all(len(v) == 2 for v in views(nodes, "frz")), timeout=10)
        owner = owner_of(nodes)
        others = [n for n in nodes if n is not owner]
        if order != "control_no_freeze":
            owner.signal(signal.SIGSTOP)
        try:
            errs: list[BaseException] = []

            def drain() -> None:
                try:
                    with Client([others[0].address]) as op:
                        op.set_instance("frz", "10.6.0.1", 1, enabled=False)
                except BaseException as e:  # noqa: BLE001
                    errs.append(e)

            def weigh() -> None:
                try:
                    with Client([others[1].address]) as op:
                        op.set_instance("frz", "10.6.0.1", 1, weight=5.0)
                except BaseException as e:  # noqa: BLE001
                    errs.append(e)

            if order == "concurrent":
                t1, t2 = threading.Thread(target=drain), threading.Thread(target=weigh)
                t1.start()
                t2.start()
                t1.join(10)
                t2.join(10)
            elif order in ("drain_then_weight", "control_no_freeze"):
                drain()
                weigh()
            else:
                weigh()
                drain()
            assert not errs, errs
        finally:
            owner.signal(signal.SIGCONT)
        want = (False, 5.0)

        def settled() -> bool:
            return all(v["10.6.0.1:1"][:2] == want for v in views(nodes, "frz"))

        try:
            wait_until(settled, timeout=15)
        except AssertionError:
            raise AssertionError(f"want {want} everywhere, got {views(nodes, 'frz')}") from None


def test_register_deregister_loop_while_owner_frozen_no_zombie(
    procs: list[NodeProcess],
) -> None:
    """Alternate register/deregister of one instance through Client([A, B, C]) with default
    time-outs while its service's owner is frozen; each call succeeds within the time-out
    or raises OutcomeUnknownError. After the owner resumes, the last successful write
    holds everywhere."""
    nodes = _cluster(procs)
    with Client([nodes[1].address]) as seed:
        seed.register("zmb", "10.5.0.9", 9)  # makes the service known, finds its owner
        wait_until(lambda: all(len(v) == 1 for v in views(nodes, "zmb")), timeout=10)
        owner = owner_of(nodes)
        owner.signal(signal.SIGSTOP)
        outcomes: list[tuple[str, str, float]] = []
        try:
            with Client([n.address for n in nodes], sessions=False, beat_interval=0.5) as c:
                t_end = time.monotonic() + 12
                i = 0
                while time.monotonic() < t_end and i < 12:
                    op = "register" if i % 2 == 0 else "deregister"
                    t0 = time.monotonic()
                    try:
                        getattr(c, op)("zmb", "10.5.0.1", 1)
                        outcomes.append((op, "ok", time.monotonic() - t0))
                    except OutcomeUnknownError as e:
                        outcomes.append((op, f"unknown: {e}", time.monotonic() - t0))
                    i += 1
                last_ok = [o for o in outcomes if o[1] == "ok"][-1][0]
                owner.signal(signal.SIGCONT)
                want_present = last_ok == "register"

                def present() -> list[bool]:
                    return ["10.5.0.1:1" in v for v in views(nodes, "zmb")]

                wait_until(lambda: present() == [want_present] * 3, timeout=15)
                # and it stays so (no late write resurfaces) for 4 s
                holds_for(
                    lambda: present() == [want_present] * 3,
                    4,
                    0.2,
                    f"no late write resurfacing; outcomes {outcomes}",
                )
        finally:
            owner.signal(signal.SIGCONT)
        slow = [o for o in outcomes if o[2] > 3.6]
        unknown = [o for o in outcomes if o[1] != "ok"]
        assert not slow and not unknown, outcomes
