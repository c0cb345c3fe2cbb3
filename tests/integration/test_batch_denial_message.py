"""A `register_batch` in a namespace the key may not write is denied with a
message about *listing services*: "client 'orders-app' may not list services in secretns:
needs write access to some service there" (found by an outside review, review12).  The operation
named is not the one that was refused, so an operator extending the ACL is sent looking
for a `services` call.

docs/SECURITY.md: "Denials get PERMISSION_DENIED (code 9) with a message naming the
client, the operation, the namespace/group/service of the request and the access it
needs".  Expected: the message names register_batch (or register), not "list services".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import NodeProcess, raw_request
from test_security import Keys

pytestmark = pytest.mark.timeout(60)


def test_a_denied_register_batch_names_the_operation(
    tmp_path: Path, start_node: Callable[..., NodeProcess]
) -> None:
    keys = Keys(tmp_path)
    node = start_node(
        "--key", keys.key("cluster"), "--acl", str(keys.acl), curve=keys.curve("cluster")
    )
    body = {
        "v": 1,
        "id": 1,
        "op": "register_batch",
        "namespace": "secretns",  # the app key writes orders* in public only
        "instances": [{"service": "orders", "ip": "10.40.0.5", "port": 5}],
    }
    reply = raw_request(node.port, body, 5.0, keys.curve("app"))
    assert not reply["ok"] and reply["error"]["name"] == "PERMISSION_DENIED", reply
    message = reply["error"]["message"]
    assert "list services" not in message and "regist" in message, (
        f"the denial of a register_batch names another operation: {message!r}"
    )
