"""review31: `meshreg config get DATA_ID --label K=V` is meant to show "what a client with
those labels gets", but a gray rule by client address (`config gray --client IP`) that
matches the operator's own host makes it print the gray content and say "the gray
version for labels zone=a (gray rule: labels none)".

cli_config.py `get` docstring: "With --label, what a client with those labels gets: a
gray version whose label selector they match, else the main one (said on stderr)".  The
read goes from the operator's address, which the node matches against the rule's
`clients` (gray_host true in --json); the stderr line then credits the labels and shows
the rule's (empty) labels, not its addresses.  A client labelled zone=a elsewhere gets
the main version.

Seen: publish app "main"; config gray app --content GRAY --client 127.0.0.1;
config get app --label zone=a -> stdout GRAY, stderr "meshreg: the gray version for
labels zone=a (gray rule: labels none)"."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import NodeProcess, run_cli  # noqa: E402


@pytest.mark.timeout(60)
def test_config_get_with_label_is_not_the_operators_address_gray() -> None:
    node = NodeProcess().start()
    try:
        s = node.address
        assert run_cli("config", "publish", "app", "-s", s, "--content", "main").returncode == 0
        gray = run_cli("config", "gray", "app", "-s", s, "--content", "GRAY",
                       "--client", "127.0.0.1")  # fmt: skip
        assert gray.returncode == 0, gray.stderr
        got = run_cli("config", "get", "app", "-s", s, "--label", "zone=a")
        assert got.returncode == 0, got.stderr
        said = got.stderr.strip()
        # a client labelled zone=a (at another address) is served the main version
        assert got.stdout.strip() == "main" or "address" in said or "127.0.0.1" in said, (
            f"--label zone=a printed {got.stdout.strip()!r} with {said!r}: the gray rule is "
            "by the operator's address, not by labels"
        )
    finally:
        node.cleanup()
