"""Limits per client: instances held, and the rate of expensive reads (issue 10, M2/M6).

Node-wide quotas (core/quotas) stop a node from being grown until it falls over;
these stop one client from taking all of it from the others.

* **Instances per client.**  A client is a key of the ACL (a node without a key has
  no client identities, so this limit needs ``--key``).  The node a client's
  register arrives at (its entry node, which forwards it to the service's owner)
  counts the instances the client registered through it and refuses a new one over
  ``max_instances_per_client`` with RESOURCE_EXHAUSTED.  The count is per entry
  node: a client that fails over to another node starts a count there, so a client
  holds at most the limit times the nodes it talks to (one at a time, normally).
  Instances deregistered through the node leave the count once the deregister is
  applied (answered here, or the owner's answer relayed): :meth:`release_gone`, only if
  the store no longer holds the instance (review37 F5: a deregister refused as late
  freed its place, and a key held any number of instances); a register refused here
  leaves it the same way; instances removed otherwise (evicted, deregistered
  elsewhere) leave it when :meth:`prune` finds them gone from the store, which it
  checks in bounded steps.
* **Services per client in a namespace.**  Namespaces are shared by applications
  (docs/SECURITY.md: one key per application, each its own service pattern), and the
  namespace's ``max_services_per_namespace`` is one budget: one key registering 100,000
  services took all of it, and every other application's new service there was refused
  (review83 F3).  So the entry node also counts the distinct services a client holds
  instances of, per namespace, and refuses a client's *new* service (one the node does
  not hold yet) when the client holds its share already (``[limits]
  max_services_per_client_in_namespace``, 0: a quarter of max_services_per_namespace)
  **and** a quarter or less of the namespace's services are free: a lone application
  fills three quarters of its namespace unhindered, and past that only clients under
  their share add services, so the last quarter is theirs.  Per entry node, as above.
* **Writes.**  With ``[limits] write_rate_per_client`` set (0, the default: no limit),
  each client has a token bucket of that many writes per second (burst: twice that),
  counted by the node the write arrives at: a register, each entry of a
  ``register_batch``, an instance or service update, a config write.  Beats, session
  renewals and deregistrations are not counted (refusing them would kill a client's
  instances, or leave an exiting process's listed: review84 F2).  A batch larger than
  the burst waits for a full bucket and takes it below zero (its entries count: the
  rate holds on average), so no batch is refused forever.  A refused write gets
  RESOURCE_EXHAUSTED with ``retry_after``, changes nothing, and the Python client sends
  it again then, within its time-out.  One key registered 20,000 instances a second
  through one node (review83 F2), all of a 3-node cluster's loop turns its.
* **Expensive reads.**  ``services``, ``cluster`` and ``stats`` cost the node
  O(page) or O(members) work; each client has a token bucket of
  ``read_rate_per_client`` per second (burst: twice that), and the node one of
  ``read_rate_per_node`` across all clients, so a flood of them from one client,
  or from many connections, cannot take the node from the hot path (beats,
  ``instances``).  A refused read gets RESOURCE_EXHAUSTED and says when to retry;
  it changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator

from meshreg.model import InstanceId, ServiceKey

Holds = Callable[[ServiceKey, InstanceId], bool]  # whether the node holds an instance

PRUNE_STEP = 2_000  # held entries checked per prune call
PRUNE_AFTER = 10.0  # s: an entry newer than this may not be replicated back yet
PRUNE_EVERY = 10.0  # s between the starts of two prune passes
MAX_BUCKETS = 10_000  # clients with a read bucket; above it, full buckets are dropped

Held = tuple[ServiceKey, InstanceId]


class ClientHoldings:
    """Instances registered through this node, per client name."""

    __slots__ = (
        "limit", "services_limit", "services_share", "held", "services", "refused",
        "refused_services", "_walk", "_next_pass",
    )  # fmt: skip

    def __init__(self, limit: int, services_limit: int = 0, services_share: int = 0) -> None:
        """``services_limit``: the namespace's ``max_services_per_namespace``;
        ``services_share``: a client's share of it (0: no share is checked)."""
        self.limit = limit
        self.services_limit = services_limit
        self.services_share = services_share
        self.held: dict[str, dict[Held, float]] = {}  # client -> {(service, id): since}
        # client -> namespace -> service -> instances held (the distinct services)
        self.services: dict[str, dict[str, dict[ServiceKey, int]]] = {}
        self.refused = 0
        self.refused_services = 0
        self._walk: Iterator[tuple[str, Held]] | None = None
        self._next_pass = float("-inf")

    def admit(
        self,
        client: str,
        key: ServiceKey,
        iid: InstanceId,
        now: float,
        new_service_in: int | None = None,
    ) -> str | None:
        """Count a register; a message saying why when it is over the client's limit.
        ``new_service_in``: the node does not hold ``key`` yet, and its namespace holds
        that many services (None: the service exists, it takes nothing of the namespace)."""
        mine = self.held.get(client)
        if mine is None:
            mine = self.held[client] = {}
        entry = (key, iid)
        if entry in mine:
            return None
        if new_service_in is not None and self.services_share:
            why = self._services_share(client, key, new_service_in)
            if why is not None:
                return why
        if len(mine) >= self.limit:
            self.refused += 1
            return (
                f"register: quota reached: client {client!r} holds {len(mine)} instances "
                f"registered through this node ([limits] max_instances_per_client = "
                f"{self.limit}); instance {iid} of {key.namespace}/{key.group}/{key.service} "
                "would be a new one; deregister instances it no longer runs, or raise "
                "[limits] max_instances_per_client in the node config"
            )
        mine[entry] = now
        if self.services_share:
            per_ns = self.services.setdefault(client, {}).setdefault(key.namespace, {})
            per_ns[key] = per_ns.get(key, 0) + 1
        return None

    def _services_share(self, client: str, key: ServiceKey, in_namespace: int) -> str | None:
        """A message when ``client``'s new service would take more than its share of a
        namespace a quarter or less of which is free (module docstring)."""
        free = self.services_limit - in_namespace
        if free > self.services_limit // 4:
            return None
        held = len(self.services.get(client, {}).get(key.namespace, ()))
        if held < self.services_share:
            return None
        self.refused_services += 1
        return (
            f"register: quota reached: client {client!r} holds instances of {held} services "
            f"in namespace {key.namespace!r} through this node, its share ([limits] "
            f"max_services_per_client_in_namespace = {self.services_share}), and a quarter "
            f"or less of the namespace's max_services_per_namespace is free: the rest is "
            f"kept for the namespace's other clients; service {key.group}/{key.service} "
            "would be a new one; deregister the instances of services it no longer runs, "
            "or raise [limits] max_services_per_client_in_namespace or "
            "max_services_per_namespace in the node config"
        )

    def release(self, client: str, key: ServiceKey, iid: InstanceId) -> None:
        mine = self.held.get(client)
        if mine is not None:
            if mine.pop((key, iid), None) is not None and self.services_share:
                self._release_service(client, key)
            if not mine:
                del self.held[client]

    def _release_service(self, client: str, key: ServiceKey) -> None:
        namespaces = self.services.get(client)
        if namespaces is None:
            return
        per_ns = namespaces.get(key.namespace)
        if per_ns is None or key not in per_ns:
            return
        per_ns[key] -= 1
        if per_ns[key] <= 0:
            del per_ns[key]
            if not per_ns:
                del namespaces[key.namespace]
                if not namespaces:
                    del self.services[client]

    def release_gone(self, key: ServiceKey, iid: InstanceId, holds: Holds) -> None:
        """After a deregister (or a refused register) was answered: every client's count
        forgets the instance if the store no longer holds it; a request that removed
        nothing frees nothing."""
        if not self.held or holds(key, iid):
            return
        entry = (key, iid)
        for client in [c for c, mine in self.held.items() if entry in mine]:
            self.release(client, key, iid)

    def forget_gone(self, client: str, holds: Holds) -> None:
        """Forget at once what ``client`` holds that the store no longer has (after a
        ``session_close``, which deregisters many instances in one request)."""
        mine = self.held.get(client)
        if not mine:
            return
        gone = [(key, iid) for key, iid in mine if not holds(key, iid)]
        for key, iid in gone:
            self.release(client, key, iid)

    def prune(self, holds: Holds, now: float, budget: int = PRUNE_STEP) -> None:
        """Forget up to ``budget`` entries' worth of instances the store no longer has."""
        if not self.held:
            return
        if self._walk is None:
            if now < self._next_pass:
                return
            self._next_pass = now + PRUNE_EVERY
            self._walk = iter([(c, e) for c, mine in self.held.items() for e in mine])
        for _ in range(budget):
            step = next(self._walk, None)
            if step is None:
                self._walk = None
                return
            client, (key, iid) = step
            mine = self.held.get(client)
            since = mine.get((key, iid)) if mine is not None else None
            if since is None or now - since < PRUNE_AFTER:
                continue
            if not holds(key, iid):
                self.release(client, key, iid)

    def count(self) -> int:
        return sum(len(mine) for mine in self.held.values())


class ReadRate:
    """Token buckets: one per client and one for the node; time is an argument."""

    __slots__ = ("per_client", "per_node", "throttled", "_buckets", "_node")

    def __init__(self, per_client: int, per_node: int) -> None:
        self.per_client = float(per_client)
        self.per_node = float(per_node)
        self.throttled = 0
        self._buckets: dict[Hashable, list[float]] = {}  # client -> [tokens, at]
        self._node: list[float] = [2 * self.per_node, float("-inf")]

    @staticmethod
    def _refill(bucket: list[float], rate: float, now: float) -> float:
        tokens = (
            min(2 * rate, bucket[0] + (now - bucket[1]) * rate) if now > bucket[1] else bucket[0]
        )
        bucket[1] = now
        bucket[0] = tokens
        return tokens

    def take(self, client: Hashable, now: float, cost: float = 1.0) -> float:
        """0.0 when the read may go ahead (tokens taken); else seconds until it may."""
        bucket = self._bucket(client, now)
        mine = self._refill(bucket, self.per_client, now)
        node = self._refill(self._node, self.per_node, now)
        if mine < cost or node < cost:
            self.throttled += 1
            need = max((cost - mine) / self.per_client, (cost - node) / self.per_node)
            return max(need, 0.001)
        bucket[0] = mine - cost
        self._node[0] = node - cost
        return 0.0

    def _bucket(self, client: Hashable, now: float) -> list[float]:
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._drop_full(now)
            bucket = self._buckets[client] = self._new_bucket(now)
        return bucket

    def _new_bucket(self, now: float) -> list[float]:
        """[tokens, when they were counted]: full."""
        return [2 * self.per_client, now]

    def _drop_full(self, now: float) -> None:
        """Forget clients whose buckets have refilled (they lose nothing); else all."""
        full = 2 * self.per_client
        for client in [
            c for c, b in self._buckets.items() if self._refill(b, self.per_client, now) >= full
        ]:
            del self._buckets[client]
        if len(self._buckets) >= MAX_BUCKETS:
            self._buckets.clear()


class WriteRate(ReadRate):
    """One token bucket of writes per client (no node-wide one: a node-wide rate would
    let one client's flood refuse everybody's writes, what the per-client rate is for);
    ``per_client`` 0: no limit.  A write costs its entries; one of more than the burst
    (twice the rate) waits for a full bucket and takes it below zero.

    Refused writes are told their turn, not the next token's: a bucket also counts the
    tokens its refused writes will come back for (``[2]``), so of eight batches refused
    at once each is told a later time, and they come back one after another (review84
    F7: all were told the same wait and came back together; 1,745 refusals for 100
    config writes).  An admitted write takes its share of that count back.  Only the
    client's own later writes wait behind a refused write that never comes back (at most
    ``MAX_QUEUED_SECONDS`` of its rate)."""

    __slots__ = ()

    MAX_QUEUED_SECONDS = 30.0

    def __init__(self, per_client: int) -> None:
        super().__init__(per_client, 1)

    def _new_bucket(self, now: float) -> list[float]:
        """[tokens, when they were counted, tokens its refused writes come back for]."""
        return [2 * self.per_client, now, 0.0]

    def take(self, client: Hashable, now: float, cost: float = 1.0) -> float:
        """0.0 when the write may go ahead (its cost taken); else seconds until it may."""
        rate = self.per_client
        if not rate:
            return 0.0
        bucket = self._bucket(client, now)
        tokens = self._refill(bucket, rate, now)
        need = min(cost, 2 * rate)
        if tokens < need:
            self.throttled += 1
            queued = bucket[2]
            bucket[2] = min(queued + need, self.MAX_QUEUED_SECONDS * rate)
            return max((need - tokens + queued) / rate, 0.001)
        bucket[0] = tokens - cost
        bucket[2] = max(0.0, bucket[2] - need)
        return 0.0
