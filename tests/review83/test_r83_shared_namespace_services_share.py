"""review83 F3: one key confined to ``orders*`` in a shared namespace takes the whole of
the namespace's ``max_services_per_namespace``, and every other team's new service there
is refused.

SECURITY.md's ACL example puts several applications in ``public``, each allowed its own
service pattern.  In the review (defaults, 3 nodes) ``orders-app`` registered 100,000
services ``orders-<n>`` (one instance each, half its 200,000-instance quota, 28.7 s of
``register_batch``) and the namespace was full: "namespace 'public' holds 100001
services ([limits] max_services_per_namespace = 100000)".  Namespace-wide budgets have
shares elsewhere (metadata, config content, overrides, subscriptions: a quarter per
namespace), but nothing stops one client from taking a shared namespace's services.
The refusal also tells ``orders-app`` how many services the namespace holds, those it
may not read included.

Here with ``max_services_per_namespace = 20``: orders-app fills the namespace, then
payments-app (allowed ``payments*``) registers its first service.  Expected: it is
registered (a per-client share of a namespace's services, as for other shared budgets)."""

from __future__ import annotations

from pathlib import Path

import pytest
from r83lib import Keys, ok, start_keyed

pytestmark = pytest.mark.timeout(90)

CLIENTS = {
    "orders-app": 'allow = [{ namespace = "public", group = "*", service = "orders*", '
    'access = "write" }]',
    "payments-app": 'allow = [{ namespace = "public", group = "*", service = "payments*", '
    'access = "write" }]',
}


def test_one_key_cannot_take_all_of_a_shared_namespace_services(tmp_path: Path) -> None:
    keys = Keys(tmp_path, CLIENTS)
    config = tmp_path / "node.toml"
    config.write_text("[limits]\nmax_services_per_namespace = 20\n")
    nodes = start_keyed(keys, 1, "--config", str(config))
    try:
        port = nodes[0].port
        with keys.dealer("orders-app", port) as app:
            batch = [{"service": f"orders-{n}", "ip": "10.7.0.1", "port": 80} for n in range(40)]
            results = ok(app.call("register_batch", namespace="public", instances=batch))
            taken = sum(1 for r in results["results"] if r is None)
            # (on the code of the review: 20, the namespace's whole limit, by one key; now
            # three quarters, then its share of 5 is long used up)
            assert taken == 15, results
        with keys.dealer("payments-app", port) as pay:
            reply = pay.call("register", namespace="public", service="payments",
                             ip="10.8.0.1", port=80)  # fmt: skip
        assert reply["ok"], (
            f"orders-app registered {taken} services orders-<n> in public, the namespace's "
            "whole max_services_per_namespace, and payments-app's first service there was "
            f"refused: {reply['error']['message']}"
        )
    finally:
        for n in nodes:
            n.cleanup()
