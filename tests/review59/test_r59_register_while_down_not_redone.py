"""review59 F2 (medium, design: documented, but against Nacos 2 and the new listener redo):
a provider whose `register()` runs while no node answers gets `ServerUnreachableError`
(`unsent`, "not applied") and the instance is never registered when the node comes up;
nothing is redone, although `subscribe()` / `config_listen()` in the same situation now
keep their listener "as Nacos 2 redoes a subscription" (README, Outage).

Nacos 2 (NamingGrpcClientProxy.registerService) caches the instance for redo before it
sends the request, so a registration made while the server is down is applied by the
redo task once the connection is back (and the call still throws).  The CHANGELOG's reason
for keeping listeners ("an application started during an outage, which logged the error
and went on, never heard of the service") holds word for word for a provider: an
application started during an outage that logs the failed register and goes on serving is
never discoverable.  `meshreg register` (the CLI sidecar) does retry by itself; the
Python API does not, and the error does not say that the caller must call it again.

Observed (single node, down; `Client(timeout=2)`): `register` raised after 2.0 s
"register: no reply ... so the request never left this client (not applied); is
`meshreg node` running there? ..."; the node started 2.5 s later; the instance was not
listed in the following 10 s (nor ever: nothing retries), 3 of 3 runs (one script, this
test twice); an instance the
same client registered before an outage is registered again within a renewal (works).
"""

from __future__ import annotations

import tempfile

import pytest
from helpers import NodeProcess, free_port_pair, wait_until

from meshreg import Client
from meshreg.errors import ServerUnreachableError

pytestmark = pytest.mark.timeout(90)


def test_register_made_while_the_node_is_down_is_redone_once_it_is_up() -> None:
    port = free_port_pair()
    address = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="r59-") as tmp:
        node = NodeProcess("--data-dir", tmp, port=port)
        provider = Client([address], timeout=2.0, attempt_timeout=0.5, beat_interval=1.0)
        try:
            with pytest.raises(ServerUnreachableError) as caught:
                provider.register("orders", "10.0.0.1", 8080)
            assert caught.value.unsent
            assert caught.value.registration_kept and provider.kept_registrations == 1
            node.start()
            with Client([address], timeout=3.0) as reader:

                def listed() -> bool:
                    return any(
                        i.address == "10.0.0.1:8080"
                        for i in reader.instances("orders", healthy_only=False)
                    )

                wait_until(listed, 15, 0.25,
                           "the registration made during the outage to be redone")  # fmt: skip
                wait_until(lambda: provider.kept_registrations == 0, 5, 0.05,
                           "the client to say the kept registration is made")  # fmt: skip
        finally:
            provider.close()
            node.cleanup()
