"""review33 F3 (low, CLI): ``meshreg services -n dev`` prints nothing at all and exits 0
when namespace ``dev`` holds services, only not in DEFAULT_GROUP; ``meshreg namespaces``
says ``dev`` holds 1 service, ``meshreg config list -n dev`` lists every group of it
without ``-g``, and the wire op ``services`` lists every group when no group is given
(PROTOCOL.md 2.7).  ``meshreg instances`` says on stderr why it printed nothing ("an
empty stdout alone reads like a failure", cli.py); ``services`` says nothing."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import NodeProcess, run_cli  # noqa: E402

from meshreg import Client  # noqa: E402


@pytest.mark.timeout(60)
def test_services_of_a_namespace_is_not_silently_empty() -> None:
    node = NodeProcess().start()
    client = None
    try:
        client = Client([node.address], namespace="dev", group="G1", handle_sigterm=False)
        client.register("svc", "10.0.0.1", 1)
        listed = run_cli("namespaces", "--json", "-s", node.address)
        assert '"services": 1' in listed.stdout, listed  # the namespace holds it

        out = run_cli("services", "-n", "dev", "-s", node.address)
        assert out.returncode == 0, out
        assert "svc" in out.stdout or out.stderr.strip(), (
            "`meshreg services -n dev` printed nothing and said nothing, while `meshreg "
            f"namespaces` counts 1 service in dev (group G1): stdout={out.stdout!r} "
            f"stderr={out.stderr!r}"
        )
        assert "G1 (1)" in out.stderr and "-g" in out.stderr, out.stderr  # where they are
        listed = run_cli("services", "-n", "dev", "-g", "G1", "-s", node.address)
        assert listed.stdout.split() == ["svc"] and listed.stderr == "", listed
        none = run_cli("services", "-n", "prod", "-s", node.address)
        assert none.stdout == "" and "any group" in none.stderr, none
    finally:
        if client is not None:
            client.close(timeout=1.0)
        node.cleanup()
