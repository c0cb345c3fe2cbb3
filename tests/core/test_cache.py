"""ServiceView (client cache) fed with real encoded notifications from a real RegistryNode."""

from __future__ import annotations

from typing import Any

from answers import served_map
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshreg.client.cache import Outcome, ServiceView
from meshreg.core.effects import Effect, InstanceView, ServiceChanged, SyncAnnounced
from meshreg.core.health import HealthPolicy
from meshreg.core.registry import RegistryNode
from meshreg.model import Instance, InstanceId, ServiceKey
from meshreg.wire.messages import Beat, DeregisterInstance, RegisterInstance, RequestRejected
from meshreg.wire.notifications import (
    decode_notification,
    encode_change,
    encode_sync,
    parse_topic,
    topic_for,
)
from meshreg.wire.result_maps import to_wire

EPOCH = 7
SVC = ServiceKey("public", "DEFAULT_GROUP", "orders")
A = InstanceId("10.0.0.1", 8080, "DEFAULT")
B = InstanceId("10.0.0.2", 8080, "DEFAULT")


def wire(effect: Effect, epoch: int = EPOCH) -> dict[str, Any]:
    """Encode an effect as the node publishes it and decode it as a client does."""
    if isinstance(effect, ServiceChanged):
        frames = encode_change(effect, epoch)
    else:
        frames = encode_sync(effect, epoch)
    assert frames[0] == topic_for(effect.key)
    assert parse_topic(frames[0]) == effect.key
    return decode_notification(frames)


def delta(
    base: int,
    revision: int,
    upsert: tuple[InstanceView, ...] = (),
    remove: tuple[InstanceId, ...] = (),
    epoch: int = EPOCH,
) -> dict[str, Any]:
    return wire(ServiceChanged(SVC, base, revision, upsert, remove, "updated"), epoch)


def sync(revision: int, epoch: int = EPOCH) -> dict[str, Any]:
    return wire(SyncAnnounced(SVC, revision), epoch)


def iv(iid: InstanceId, healthy: bool = True, enabled: bool = True, weight: float = 1.0) -> Any:
    return InstanceView(iid.ip, iid.port, iid.cluster, weight, enabled, healthy, {"k": iid.ip})


def snapshot(revision: int, *views: InstanceView, epoch: int = EPOCH) -> dict[str, Any]:
    return {
        "namespace": SVC.namespace,
        "group": SVC.group,
        "service": SVC.service,
        "epoch": epoch,
        "revision": revision,
        "instances": [
            {
                "ip": v.ip,
                "port": v.port,
                "cluster": v.cluster,
                "weight": v.weight,
                "enabled": v.enabled,
                "healthy": v.healthy,
                "metadata": v.metadata,
            }
            for v in views
        ],
    }


def loaded_view(revision: int = 5, *views: InstanceView) -> ServiceView:
    view = ServiceView(SVC)
    assert view.apply_snapshot(snapshot(revision, *views)) is Outcome.APPLIED
    return view


def ids(view: ServiceView) -> list[InstanceId]:
    return [i.id for i in view.listing()]


def as_wire(view: ServiceView) -> list[dict[str, Any]]:
    return [i.to_wire() for i in view.listing()]


# -- deltas ---------------------------------------------------------------------------------------
def test_snapshot_then_contiguous_deltas_from_a_real_node() -> None:
    node = RegistryNode(HealthPolicy(), EPOCH, 0.0, detect_stalls=False)
    served_map(node, RegisterInstance(1, SVC, A, 1.0, True, {}), 0.0)
    node.take_effects()
    view = ServiceView(SVC)
    assert view.apply_snapshot(to_wire(node.instances_result(SVC, False))) is Outcome.APPLIED
    steps = [
        lambda: served_map(node, RegisterInstance(2, SVC, B, 2.0, True, {"z": "1"}), 1.0),
        lambda: served_map(node, RegisterInstance(3, SVC, A, 3.0, True, {}), 2.0),
        lambda: node.tick(16.5),  # B silent 15.5 s -> unhealthy; A (beat at 2.0) not yet
        lambda: node.tick(21.5),  # A silent 19.5 s -> unhealthy
        lambda: served_map(node, Beat(4, SVC, B), 22.0),  # recovered
        lambda: served_map(node, DeregisterInstance(5, SVC, A), 23.0),
    ]
    applied = 0
    for step in steps:
        step()
        for effect in node.take_effects():
            assert view.apply_notification(wire(effect)) is Outcome.APPLIED
            applied += 1
        expected = to_wire(node.instances_result(SVC, False))
        assert as_wire(view) == expected["instances"]
        assert view.revision == expected["revision"]
    assert applied == 6


def test_delta_with_base_not_our_revision_is_a_gap_and_changes_nothing() -> None:
    view = loaded_view(5, iv(A))
    assert view.apply_notification(delta(6, 7, (iv(B),))) is Outcome.GAP
    assert view.revision == 5
    assert ids(view) == [A]
    assert view.apply_notification(delta(5, 6, (iv(B),))) is Outcome.APPLIED
    assert view.apply_notification(delta(6, 7, (), (A,))) is Outcome.APPLIED
    assert (view.revision, ids(view)) == (7, [B])


def test_delta_base_may_jump_when_other_services_changed() -> None:
    view = loaded_view(5, iv(A))  # node-wide revisions: ours may go 5 -> 9
    assert view.apply_notification(delta(5, 9, (iv(B),))) is Outcome.APPLIED
    assert view.revision == 9


def test_old_revision_is_unchanged() -> None:
    view = loaded_view(5, iv(A))
    for msg in (delta(4, 5, (), (A,)), delta(2, 3, (iv(B),)), delta(5, 5, (), (A,))):
        assert view.apply_notification(msg) is Outcome.UNCHANGED
    assert (view.revision, ids(view)) == (5, [A])


def test_delta_of_other_epoch_is_a_gap() -> None:
    view = loaded_view(5, iv(A))
    assert view.apply_notification(delta(5, 6, (iv(B),), epoch=EPOCH + 1)) is Outcome.GAP
    assert view.apply_notification(delta(1, 2, (iv(B),), epoch=EPOCH + 1)) is Outcome.GAP
    assert (view.revision, view.epoch, ids(view)) == (5, EPOCH, [A])


def test_sync_equal_revision_is_unchanged_else_gap() -> None:
    view = loaded_view(5, iv(A))
    assert view.apply_notification(sync(5)) is Outcome.UNCHANGED
    assert view.apply_notification(sync(6)) is Outcome.GAP
    assert view.apply_notification(sync(4)) is Outcome.GAP
    assert view.apply_notification(sync(0)) is Outcome.GAP
    assert view.apply_notification(sync(5, epoch=EPOCH + 1)) is Outcome.GAP
    assert (view.revision, ids(view)) == (5, [A])


def test_notifications_before_first_snapshot_apply_nothing() -> None:
    view = ServiceView(SVC)
    for msg in (delta(0, 1, (iv(A),)), sync(1), delta(1, 2, (iv(B),)), delta(5, 6, (iv(B),))):
        assert view.apply_notification(msg) is Outcome.UNCHANGED
    assert (view.loaded, view.revision, view.epoch, view.instances) == (False, 0, None, {})
    assert view.listing() == []


def test_snapshot_covering_what_was_heard_before_loading_applies() -> None:
    view = ServiceView(SVC)
    view.apply_notification(delta(0, 1, (iv(A),)))
    view.apply_notification(sync(2))
    assert view.apply_snapshot(snapshot(2, iv(A), iv(B))) is Outcome.APPLIED
    assert (view.loaded, view.revision, ids(view)) == (True, 2, [A, B])


def test_snapshot_older_than_a_heard_change_is_loaded_but_a_gap() -> None:
    view = ServiceView(SVC)
    view.apply_notification(delta(3, 4, (iv(B),)))
    view.apply_notification(delta(1, 2, (iv(A),)))  # out of order: the newest hint stays
    assert view.apply_snapshot(snapshot(3, iv(A))) is Outcome.GAP  # pull again
    assert (view.loaded, view.revision, ids(view)) == (True, 3, [A])
    assert view.apply_snapshot(snapshot(4, iv(A), iv(B))) is Outcome.APPLIED  # hint used up
    assert view.apply_notification(delta(4, 5, (), (A,))) is Outcome.APPLIED
    assert ids(view) == [B]


def test_hint_from_another_epoch_does_not_make_a_gap() -> None:
    view = ServiceView(SVC)
    view.apply_notification(delta(8, 9, (iv(B),), epoch=EPOCH - 1))  # the node restarted since
    assert view.apply_snapshot(snapshot(1, iv(A))) is Outcome.APPLIED
    view = ServiceView(SVC)
    view.apply_notification(delta(8, 9, (iv(B),), epoch=EPOCH - 1))
    view.apply_notification(sync(3))  # a newer epoch's hint replaces an older one's
    assert view.apply_snapshot(snapshot(1, iv(A))) is Outcome.GAP


# -- snapshots -------------------------------------------------------------------------------------
def test_snapshot_rules() -> None:
    view = ServiceView(SVC)
    assert view.apply_snapshot(snapshot(0)) is Outcome.APPLIED  # first load, even empty
    assert view.apply_snapshot(snapshot(0)) is Outcome.UNCHANGED  # same content
    assert view.apply_snapshot(snapshot(3, iv(A))) is Outcome.APPLIED
    assert view.apply_snapshot(snapshot(2)) is Outcome.UNCHANGED  # older answer
    assert ids(view) == [A]
    assert view.apply_snapshot(snapshot(4, iv(A))) is Outcome.UNCHANGED  # newer, same content
    assert view.revision == 4
    assert view.apply_snapshot(snapshot(1, iv(B), epoch=EPOCH + 1)) is Outcome.APPLIED
    assert (view.epoch, view.revision, ids(view)) == (EPOCH + 1, 1, [B])


def test_listing_sorted_and_healthy_only() -> None:
    c = InstanceId("10.0.0.1", 80, "z")
    d = InstanceId("10.0.0.1", 80, "a")
    e = InstanceId("9.0.0.1", 1, "DEFAULT")
    view = loaded_view(
        8, iv(B, healthy=False), iv(A), iv(c, enabled=False), iv(d), iv(e, weight=0.0)
    )
    listing = view.listing()
    assert [i.id for i in listing] == [d, c, A, B, e]  # string order of ip, then port, cluster
    assert (listing.revision, listing.epoch) == (8, EPOCH)
    healthy = view.listing(healthy_only=True)
    assert [i.id for i in healthy] == [d, A, e]
    assert (healthy.revision, healthy.epoch) == (8, EPOCH)
    assert all(isinstance(i, Instance) for i in healthy)
    assert listing[0].metadata == {"k": "10.0.0.1"}


# -- a dropped service (regression: found by the property test below) -----------------------------
def test_repull_after_missed_drop_of_a_service_forgets_its_instances() -> None:
    """The watcher misses the deregister that empties a service, then re-pulls.

    The node used to answer ``revision 0`` for a service it dropped, lower than
    the revision the watcher held, so the view kept the removed instance.
    """
    node = RegistryNode(HealthPolicy(), EPOCH, 0.0, detect_stalls=False)
    served_map(node, RegisterInstance(1, SVC, A, 1.0, True, {}), 0.0)
    node.take_effects()
    view = ServiceView(SVC)
    view.apply_snapshot(to_wire(node.instances_result(SVC, False)))
    served_map(node, DeregisterInstance(2, SVC, A), 1.0)
    node.take_effects()  # dropped on the way
    node.subscription_changed(SVC, True)  # e.g. the periodic resync / a new subscriber
    (announce,) = node.take_effects()
    assert view.apply_notification(wire(announce)) is Outcome.GAP
    view.apply_snapshot(to_wire(node.instances_result(SVC, False)))
    assert as_wire(view) == to_wire(node.instances_result(SVC, False))["instances"] == []


# -- end to end: random operations, lossy delivery, re-pull on gap ---------------------------------
SERVICES = [SVC, ServiceKey("public", "DEFAULT_GROUP", "pay")]
IIDS = [A, B, InstanceId("10.0.0.3", 9000, "east")]

op_strategy = st.one_of(
    st.tuples(
        st.just("register"),
        st.integers(0, len(SERVICES) - 1),
        st.integers(0, len(IIDS) - 1),
        st.sampled_from([1.0, 2.0]),
        st.booleans(),
        st.sampled_from([{}, {"v": "2"}]),
    ),
    st.tuples(st.just("deregister"), st.integers(0, 1), st.integers(0, 2)),
    st.tuples(st.just("beat"), st.integers(0, 1), st.integers(0, 2)),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 5.0, 10.0, 16.0])),
    st.tuples(st.just("subscribe"), st.integers(0, 1)),
    st.tuples(st.just("restart")),
)


class Watcher:
    """A ServiceView plus at most one pull in flight, as the client agent keeps them.

    A pull's snapshot is taken when the node serves it; its reply may arrive
    some steps later, after notifications published in between.  A gap seen
    while a pull is in flight is remembered and pulled for after the reply.
    """

    def __init__(self, key: ServiceKey) -> None:
        self.view = ServiceView(key)
        self.inflight: tuple[int, dict[str, Any]] | None = None  # (due step, snapshot)
        self.gap_while_pulling = False


def run_watchers(ops: list[tuple[Any, ...]], data: Any, lossy: bool) -> Any:
    """Play ``ops`` on a node; watchers follow its notifications; return (node, watchers)."""
    epoch = 1
    now = 0.0
    node = RegistryNode(HealthPolicy(), epoch, now, detect_stalls=False)
    watchers = {key: Watcher(key) for key in SERVICES}

    def pull(w: Watcher, step: int) -> None:
        if w.inflight is not None:
            w.gap_while_pulling = True
            return
        delay = data.draw(st.integers(0, 3), label="pull reply delay")
        w.inflight = (step + delay, to_wire(node.instances_result(w.view.key, False)))

    def replies(step: int) -> None:
        for w in watchers.values():
            if w.inflight is not None and w.inflight[0] <= step:
                snap, w.inflight = w.inflight[1], None
                again, w.gap_while_pulling = w.gap_while_pulling, False
                if w.view.apply_snapshot(snap) is Outcome.GAP or again:
                    pull(w, step)

    def deliver(effects: list[Effect], step: int, lossy: bool) -> None:
        for effect in effects:
            msg = wire(effect, node.epoch)
            if lossy and data.draw(st.booleans(), label="drop"):
                continue
            w = watchers[effect.key]
            if w.view.apply_notification(msg) is Outcome.GAP:
                pull(w, step)

    def settle(step: int) -> None:
        while any(w.inflight is not None for w in watchers.values()):
            step += 4  # every delay has passed
            replies(step)

    for w in watchers.values():  # subscribe, then pull the first snapshot
        pull(w, 0)
    for step, op in enumerate(ops, start=1):
        kind = op[0]
        if kind == "register":
            _, s, i, weight, enabled, metadata = op
            served_map(
                node,
                RegisterInstance(1, SERVICES[s], IIDS[i], weight, enabled, dict(metadata)),
                now,
            )
        elif kind == "deregister":
            served_map(node, DeregisterInstance(1, SERVICES[op[1]], IIDS[op[2]]), now)
        elif kind == "beat":
            try:
                served_map(node, Beat(1, SERVICES[op[1]], IIDS[op[2]]), now)
            except RequestRejected:
                pass  # NOT_FOUND: fine, the client would register again
        elif kind == "advance":
            now += op[1]
            node.tick(now)
        elif kind == "subscribe":
            node.subscription_changed(SERVICES[op[1]], True)
        else:  # a node restart: new epoch, empty table
            epoch += 1
            node = RegistryNode(HealthPolicy(), epoch, now, detect_stalls=False)
        replies_first = data.draw(st.booleans(), label="replies before notifications")
        if replies_first:
            replies(step)
        deliver(node.take_effects(), step, lossy)
        if not replies_first:
            replies(step)

    end = len(ops) + 1
    settle(end)
    if lossy:  # a final sync (a new subscription) is delivered, then re-pulls settle
        for key in SERVICES:
            node.subscription_changed(key, True)
        deliver(node.take_effects(), end, lossy=False)
        settle(end)
    return node, watchers


PROPERTY = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(ops=st.lists(op_strategy, max_size=40), data=st.data())
def test_lossy_notifications_with_repull_converge(ops: list[tuple[Any, ...]], data: Any) -> None:
    node, watchers = run_watchers(ops, data, lossy=True)
    for key, w in watchers.items():
        view, expected = w.view, to_wire(node.instances_result(key, False))
        assert view.loaded, key
        assert as_wire(view) == expected["instances"], key
        assert (view.epoch, view.revision) == (expected["epoch"], expected["revision"]), key
        healthy = [i.to_wire() for i in view.listing(healthy_only=True)]
        assert healthy == to_wire(node.instances_result(key, True))["instances"], key


@PROPERTY
@given(
    ops=st.lists(op_strategy.filter(lambda op: op[0] != "restart"), max_size=40),
    data=st.data(),
)
def test_lossless_notifications_converge_without_a_final_sync(
    ops: list[tuple[Any, ...]], data: Any
) -> None:
    """Every notification arrives (snapshot replies late): deltas + hints alone suffice."""
    node, watchers = run_watchers(ops, data, lossy=False)
    for key, w in watchers.items():
        view, expected = w.view, to_wire(node.instances_result(key, False))
        assert view.loaded, key
        assert as_wire(view) == expected["instances"], key
        if node.store.get(key) is not None:  # a missing one's revision moves silently
            assert (view.epoch, view.revision) == (expected["epoch"], expected["revision"]), key
