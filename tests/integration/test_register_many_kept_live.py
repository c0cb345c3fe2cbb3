"""``register_many`` while no node answers: its entries are kept (``registration_kept``)
and made, in batches, once the node is up (as ``register``'s, review59 F2).  Before, the
failed entries were returned and nothing tried them again: a fleet agent started during
an outage left its instances undiscoverable.  Real node process, real sockets."""

from __future__ import annotations

import tempfile

import pytest
from helpers import NodeProcess, free_port_pair, wait_until

from meshreg import Client

pytestmark = pytest.mark.timeout(90)


def test_register_many_made_while_the_node_is_down_is_made_once_it_is_up() -> None:
    port = free_port_pair()
    address = f"127.0.0.1:{port}"
    entries = [{"service": "orders", "ip": "10.0.0.1", "port": 8000 + n} for n in range(300)]
    with tempfile.TemporaryDirectory(prefix="kept-many-") as tmp:
        node = NodeProcess("--data-dir", tmp, port=port)
        provider = Client([address], timeout=2.0, attempt_timeout=0.5, beat_interval=1.0)
        try:
            failed = provider.register_many(entries, timeout=2.0)
            assert len(failed) == len(entries)
            assert all(exc.registration_kept for _, exc in failed), failed[0][1]
            assert provider.kept_registrations == len(entries)
            node.start()
            with Client([address], timeout=3.0) as reader:

                def listed() -> bool:
                    return len(reader.instances("orders", healthy_only=False)) == len(entries)

                wait_until(listed, 20, 0.25, "the 300 kept registrations to be made")
                wait_until(lambda: provider.kept_registrations == 0, 5, 0.05,
                           "the client to say the kept registrations are made")  # fmt: skip
        finally:
            provider.close()
            node.cleanup()
