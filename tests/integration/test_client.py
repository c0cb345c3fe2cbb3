"""The Python client against real node processes on loopback."""

from __future__ import annotations

import signal
import subprocess
import threading

import pytest
from conftest import FAST_TIMINGS
from helpers import HOST, NodeProcess, meshreg_cmd, wait_until

from meshreg import Client, Instance
from meshreg.errors import InvalidArgumentError, ServerUnreachableError

FAST_CLIENT = {"beat_interval": 0.2, "timeout": 3.0, "attempt_timeout": 0.5}


def addresses(instances: list[Instance]) -> set[str]:
    return {i.address for i in instances}


def test_register_list_deregister(node: NodeProcess) -> None:
    with Client([node.address], **FAST_CLIENT) as c:
        c.register("orders", "10.0.0.5", 8080, weight=2.5, metadata={"zone": "a"})
        c.register("orders", "10.0.0.6", 8080)
        found = c.instances("orders")
        assert addresses(found) == {"10.0.0.5:8080", "10.0.0.6:8080"}
        first = next(i for i in found if i.ip == "10.0.0.5")
        assert (first.weight, first.metadata, first.cluster) == (2.5, {"zone": "a"}, "DEFAULT")
        assert first.healthy and first.enabled
        assert c.services() == ["orders"]
        c.deregister("orders", "10.0.0.5", 8080)
        assert addresses(c.instances("orders")) == {"10.0.0.6:8080"}
    # close() deregistered the rest
    with Client([node.address], **FAST_CLIENT) as c2:
        assert c2.instances("orders", healthy_only=False) == []
        assert c2.services() == []


def test_namespaces_and_groups_are_isolated(node: NodeProcess) -> None:
    with (
        Client([node.address], namespace="dev", group="blue", **FAST_CLIENT) as dev,
        Client([node.address], **FAST_CLIENT) as prod,
    ):
        dev.register("orders", "10.0.0.1", 1)
        prod.register("orders", "10.0.0.2", 2)
        assert addresses(dev.instances("orders")) == {"10.0.0.1:1"}
        assert addresses(prod.instances("orders")) == {"10.0.0.2:2"}


def test_invalid_arguments_are_rejected_before_sending(node: NodeProcess) -> None:
    with Client([node.address], **FAST_CLIENT) as c:
        with pytest.raises(InvalidArgumentError, match="port"):
            c.register("orders", "10.0.0.5", 70000)
        with pytest.raises(InvalidArgumentError, match="weight"):
            c.register("orders", "10.0.0.5", 80, weight=-1)
        with pytest.raises(InvalidArgumentError, match="service"):
            c.register("bad name!", "10.0.0.5", 80)
        for bad in ("x", None, True, [1]):  # review45 F8: "x" escaped as a bare ValueError
            with pytest.raises(InvalidArgumentError, match="field 'weight' must be a number"):
                c.register("orders", "10.0.0.5", 80, weight=bad)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError, match="field 'weight' must be a number"):
                c.set_instance("orders", "10.0.0.5", 80, weight=bad if bad is not None else "")  # type: ignore[arg-type]
        assert c.stats()["errors_total"] == 0  # nothing reached the node


def test_subscribe_gets_current_list_then_every_change(node: NodeProcess) -> None:
    seen: list[list[Instance]] = []
    lock = threading.Lock()

    def listener(instances: list[Instance]) -> None:
        with lock:
            seen.append(instances)

    def last() -> list[Instance] | None:
        with lock:
            return seen[-1] if seen else None

    with Client([node.address], **FAST_CLIENT) as provider, Client([node.address]) as consumer:
        provider.register("pay", "10.0.0.1", 7000)
        consumer.subscribe("pay", listener)
        wait_until(lambda: last() is not None and addresses(last()) == {"10.0.0.1:7000"})
        provider.register("pay", "10.0.0.2", 7000)
        wait_until(lambda: addresses(last()) == {"10.0.0.1:7000", "10.0.0.2:7000"})
        provider.deregister("pay", "10.0.0.1", 7000)
        wait_until(lambda: addresses(last()) == {"10.0.0.2:7000"})
        # the subscribed view answers instances() locally and agrees
        assert addresses(consumer.instances("pay")) == {"10.0.0.2:7000"}
        assert consumer.stats()["subscribers"] >= 1
        consumer.unsubscribe("pay", listener)
        count = len(seen)
        provider.register("pay", "10.0.0.3", 7000)
        wait_until(lambda: len(provider.instances("pay")) == 2)
        assert len(seen) == count


def test_provider_killed_goes_unhealthy_then_evicted(node: NodeProcess) -> None:
    sidecar = subprocess.Popen(
        meshreg_cmd(
            "register", "inv", "10.1.1.1:9000", "-s", node.address, "--beat-interval", "0.1"
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    states: list[tuple[bool, ...]] = []
    try:
        with Client([node.address]) as c:
            c.subscribe("inv", lambda xs: states.append(tuple(i.healthy for i in xs)))
            wait_until(lambda: (True,) in states, what="sidecar registered")
            sidecar.kill()  # SIGKILL: no deregistration, only expiry can remove it
            sidecar.wait(5)
            wait_until(lambda: (False,) in states, what="marked unhealthy")
            assert c.instances("inv") == []  # healthy_only hides it
            assert len(c.instances("inv", healthy_only=False)) == 1
            wait_until(lambda: states[-1] == (), what="evicted")
            assert c.instances("inv", healthy_only=False) == []
    finally:
        sidecar.kill()
        sidecar.wait(5)


def test_beat_heals_an_unhealthy_instance(start_node) -> None:  # type: ignore[no-untyped-def]
    node = start_node("--check-interval", "0.05", "--unhealthy-after", "0.3", "--evict-after", "60")
    # per-instance beats: a session client would renew every unhealthy_after / 3 (the
    # session_open reply says 0.3 s) and never go unhealthy (review24 F11)
    with Client([node.address], beat_interval=0.8, attempt_timeout=0.5, sessions=False) as c:
        c.register("slow", "10.0.0.9", 1)
        wait_until(lambda: not c.instances("slow", healthy_only=False)[0].healthy, timeout=5)
        # the next beat (every 0.8 s) heals it at once
        wait_until(lambda: c.instances("slow", healthy_only=False)[0].healthy, timeout=5)


def test_node_restart_makes_client_register_again_and_resubscribe(start_node) -> None:  # type: ignore[no-untyped-def]
    node = start_node(*FAST_TIMINGS)
    seen: list[tuple[int | None, set[str]]] = []
    with (
        Client([node.address], **FAST_CLIENT) as provider,
        Client([node.address], **FAST_CLIENT) as consumer,
    ):
        provider.register("cart", "10.0.0.7", 80)
        consumer.subscribe("cart", lambda xs: seen.append((xs.epoch, addresses(xs))))
        wait_until(lambda: seen and seen[-1][1] == {"10.0.0.7:80"})
        node.kill()
        restarted = start_node(*FAST_TIMINGS, port=node.port)  # same address, empty registry
        with Client([restarted.address]) as fresh:
            new_epoch = fresh.ping()["epoch"]
            # the beat gets NOT_FOUND and the provider registers again by itself
            wait_until(
                lambda: addresses(fresh.instances("cart")) == {"10.0.0.7:80"},
                timeout=15,
                what="re-registration on the restarted node",
            )
            # the subscription resumed on the new incarnation: a new change is pushed
            fresh.register("cart", "10.0.0.8", 80)
            both = {"10.0.0.7:80", "10.0.0.8:80"}
            wait_until(lambda: seen[-1] == (new_epoch, both), timeout=15, what=f"push; saw {seen}")


def test_failover_to_second_server_in_list(start_node) -> None:  # type: ignore[no-untyped-def]
    alive = start_node(*FAST_TIMINGS)
    dead = NodeProcess()  # never started: nothing listens there
    with Client([dead.address, alive.address], timeout=5.0, attempt_timeout=0.3) as c:
        c.register("x", "10.0.0.1", 1)
        assert c.server == alive.address
        assert addresses(c.instances("x")) == {"10.0.0.1:1"}


def test_unreachable_server_raises_named_error_quickly() -> None:
    dead = NodeProcess()
    with (
        Client([dead.address], timeout=1.0, attempt_timeout=0.3) as c,
        pytest.raises(ServerUnreachableError) as info,
    ):
        c.instances("orders")
    assert dead.address in str(info.value)
    assert "meshreg node" in str(info.value)


def test_client_is_safe_from_many_threads(node: NodeProcess) -> None:
    errors: list[BaseException] = []
    with Client([node.address], **FAST_CLIENT) as c:

        def work(n: int) -> None:
            try:
                for k in range(20):
                    c.register("threads", f"10.0.{n}.{k}", 1000 + k)
                    c.instances("threads")
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        assert len(c.instances("threads")) == 160


def test_node_stops_gracefully_on_sigterm_and_sigint(start_node) -> None:  # type: ignore[no-untyped-def]
    for sig in (signal.SIGTERM, signal.SIGINT):
        node = start_node()
        node.signal(sig)
        assert node.proc.wait(10) == 0
        log = node.log()
        assert f"serving requests on {HOST}:{node.port}" in log
        assert "shutting down" in log


def test_unresolvable_server_is_a_named_error_and_the_next_server_is_used(
    node: NodeProcess,
) -> None:
    with Client(["nosuchhost.invalid:7800", node.address], timeout=4.0, attempt_timeout=0.5) as c:
        c.register("x", "10.0.0.1", 1)
        assert c.server == node.address
    with (
        Client(["nosuchhost.invalid:7800"], timeout=1.0, attempt_timeout=0.3) as c,
        pytest.raises(ServerUnreachableError, match="nosuchhost.invalid"),
    ):
        c.services()


def test_bad_client_settings_raise_meshreg_errors() -> None:
    from meshreg.errors import ConfigError

    for kwargs in ({"beat_interval": 0}, {"timeout": 0}, {"attempt_timeout": float("inf")}):
        with pytest.raises(ConfigError):
            Client(["127.0.0.1:7800"], **kwargs)
    with pytest.raises(ConfigError, match="commas"):
        Client("127.0.0.1:7800 127.0.0.1:7801")
    with pytest.raises(ConfigError, match="server_order must be 'random' or 'listed'"):
        Client(["127.0.0.1:7800"], server_order="first")  # type: ignore[arg-type]


def test_a_watcher_fails_over_then_hears_pushes_from_the_new_server(start_node) -> None:  # type: ignore[no-untyped-def]
    """End to end: the SUB moves with the DEALER.  (A watcher that sends nothing else
    notices a dead server by its ping: tests/client/test_client_session_failover.py.)"""
    first = start_node(*FAST_TIMINGS)
    second = start_node(*FAST_TIMINGS)
    with Client([second.address], **FAST_CLIENT) as provider:
        seen: list[set[str]] = []
        pair = [first.address, second.address]
        with Client(pair, **FAST_CLIENT, server_order="listed") as watcher:
            watcher.subscribe("w", lambda xs: seen.append(addresses(xs)))
            # nothing registered yet (listeners run on the notifier thread); registered only
            # now, on the second node: two lone nodes, not a cluster, so the first one (the
            # watcher's server) never hears of it (an empty first list from a young lone
            # node is checked with the other server: the provider registers after it)
            wait_until(lambda: seen == [set()], what="the first list")
            provider.register("w", "10.0.0.4", 4)
            watcher.register("other", "10.0.0.5", 5)  # beats: a dead server is noticed
            first.kill()
            wait_until(lambda: watcher.server == second.address, timeout=15)
            wait_until(lambda: seen[-1] == {"10.0.0.4:4"}, timeout=10, what="re-pulled")
            provider.register("w", "10.0.0.6", 6)  # pushed by the second server only
            both = {"10.0.0.4:4", "10.0.0.6:6"}
            wait_until(lambda: seen[-1] == both, timeout=10, what=f"push; saw {seen}")


def test_reads_after_own_write_see_it_even_when_subscribed(node: NodeProcess) -> None:
    with Client([node.address], **FAST_CLIENT) as c:
        c.subscribe("ryw", lambda xs: None)
        for n in range(30):
            c.register("ryw", "10.0.1.1", 1000 + n)
            assert any(i.port == 1000 + n for i in c.instances("ryw"))
            c.deregister("ryw", "10.0.1.1", 1000 + n)
            assert all(i.port != 1000 + n for i in c.instances("ryw"))
