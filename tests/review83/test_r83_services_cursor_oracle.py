"""review83 F1: a ``services`` page's ``next_cursor`` tells a client whether a service it
may not read sorts after the last one it may read.

A key allowed ``orders*`` in every group of ``public`` (the shape of SECURITY.md's own
example) registers a probe ``<G>/orders`` and lists ``services`` with ``page_size`` 1 from
just before it: the page holds the probe, and ``next_cursor`` is set exactly when some
service, visible or not, sorts after it.  Moving the probe's group character by character
recovers the name of the last group of the namespace, which the key may not read (506
probes recovered ``team-hidden`` in the review); with ``group=G`` the same bit says
whether group G holds a hidden service sorting after ``orders``, for any guessed G.
SECURITY.md: "listings, cursors, ``cluster`` counts and subscription topics name nothing of
it"; PROTOCOL 2.7: the list shows only the services the client may read.

Expected: the cursor of a filtered page does not depend on services the client may not
read (e.g. a full page always carries a cursor, and the next page is empty)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from r83lib import Keys, ok, start_keyed

pytestmark = pytest.mark.timeout(90)

CLIENTS = {
    "orders-app": 'allow = [{ namespace = "public", group = "*", service = "orders*", '
    'access = "write" }]',
    "admin": 'allow = [{ namespace = "*", access = "admin" }]',
}


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[Keys, int]]:
    keys = Keys(tmp_path, CLIENTS)
    nodes = start_keyed(keys, 1)
    try:
        yield keys, nodes[0].port
    finally:
        for n in nodes:
            n.cleanup()


def _more_after_probe(keys: Keys, port: int, group: str, by_group: bool) -> bool:
    """Whether a one-service page holding the probe ``group/orders`` has a next cursor."""
    with keys.dealer("orders-app", port) as app:
        ok(app.call("register", namespace="public", group=group, service="orders",
                    ip="10.2.2.3", port=1))  # fmt: skip
        fields = {"group": group} if by_group else {}
        page = ok(app.call("services", namespace="public", page_size=1,
                           cursor=f"{group}/order", **fields))  # fmt: skip
        assert page["services"] == [{"group": group, "service": "orders"}], page
        ok(app.call("deregister", namespace="public", group=group, service="orders",
                    ip="10.2.2.3", port=1))  # fmt: skip
        return page["next_cursor"] is not None


@pytest.mark.parametrize("by_group", [False, True], ids=["namespace", "group"])
def test_a_filtered_page_cursor_says_nothing_of_hidden_services(
    keyed: tuple[Keys, int], by_group: bool
) -> None:
    keys, port = keyed
    seen = {}
    for hidden in (True, False):
        with keys.dealer("admin", port) as admin:
            op = "register" if hidden else "deregister"
            ok(admin.call(op, namespace="public", group="team-hidden", service="payroll",
                          ip="10.1.1.1", port=1))  # fmt: skip
        seen[hidden] = _more_after_probe(keys, port, "team-hidden", by_group)
    assert seen[True] == seen[False], (
        "orders-app's one-service page of public holding only its own team-hidden/orders "
        f"had a next_cursor with team-hidden/payroll registered ({seen[True]}) and "
        f"{'a' if seen[False] else 'no'} next_cursor without it: the cursor tells a key "
        "whether a service it may not read sorts after its own"
    )


def test_the_last_hidden_group_name_is_recovered_by_probing(keyed: tuple[Keys, int]) -> None:
    keys, port = keyed
    with keys.dealer("admin", port) as admin:
        ok(admin.call("register", namespace="public", group="team-hidden", service="payroll",
                      ip="10.1.1.1", port=1))  # fmt: skip
    alphabet = sorted("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz@.:_-")
    name = ""
    for _ in range(len("team-hidden")):  # bounded: one character per round
        first_false = next(
            (c for c in alphabet if not _more_after_probe(keys, port, name + c, False)), None
        )
        if first_false is None or first_false == alphabet[0]:
            break
        name += alphabet[alphabet.index(first_false) - 1]
    assert name != "team-hidden", (
        "orders-app, allowed only services named orders*, recovered the name of group "
        f"{name!r} of public by ordering probes of services pages"
    )
