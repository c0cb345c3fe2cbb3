"""Sealed services cursors (meshreg/security/cursors): only their node opens them."""

from __future__ import annotations

from meshreg.security.cursors import CursorSeal
from meshreg.wire.messages import ListServices, parse_request


def test_a_sealed_cursor_opens_only_under_its_key_and_hides_the_name() -> None:
    seal, other = CursorSeal(), CursorSeal()
    name = "payments-internal/ledger-" + "x" * 200
    token = seal.seal(name)
    assert token.startswith("~") and "ledger" not in token and "/" not in token
    assert seal.open(token) == name
    assert seal.seal(name) != token  # a fresh nonce each time
    assert other.open(token) is None
    for bad in (token[:-1], token[:-3] + "AAA", "~", "~AAAA", token + "A"):
        assert seal.open(bad) is None


def test_the_wire_takes_a_sealed_cursor_as_opaque() -> None:
    import msgpack

    token = CursorSeal().seal("g/s")
    body = msgpack.packb({"v": 1, "id": 1, "op": "services", "namespace": "a", "cursor": token})
    req = parse_request(body)
    assert type(req) is ListServices and req.sealed == token and req.after is None
