"""review55 F6 (low): wrong-typed arguments escape as bare TypeError/AttributeError, and a
callback that cannot be called is accepted.

README.md ("The Python client", errors): "``InvalidArgumentError`` (bad arguments are
caught before they are sent)"; client.py ``_weight`` (review45 F8): a bad ``weight`` "escaped
as a bare ValueError, past ``except MeshregError``".  The same still happens with:

* ``instances(service, clusters=5)`` -> TypeError "'int' object is not iterable"
* ``instances(service, metadata="zone=a")`` -> AttributeError "'str' object has no attribute
  'items'" (also ``select(..., metadata=[("a", "b")])``)
* ``config_history(data_id, limit="5")`` -> TypeError "'<' not supported ..."

and ``subscribe(service, None)`` / ``config_listen(data_id, 42)`` return normally; the
mistake shows only as "meshreg subscriber callback None raised ... TypeError: 'NoneType'
object is not callable" in the log, at once and on every later change.
"""

from __future__ import annotations

from typing import Any

import pytest

from meshreg import Client
from meshreg.errors import MeshregError


@pytest.mark.timeout(60)
def test_bad_arguments_raise_meshreg_errors_at_once(start_node: Any) -> None:
    node = start_node()
    client = Client([node.address], handle_sigterm=False)
    try:
        client.register("r55-args", "10.55.0.9", 1)
        cases = {
            "instances(clusters=5)": lambda: client.instances("r55-args", clusters=5),
            "instances(metadata='zone=a')": lambda: client.instances("r55-args", metadata="zone=a"),
            "select(metadata=[('a', 'b')])": lambda: client.select(
                "r55-args", metadata=[("a", "b")]
            ),
            "config_history(limit='5')": lambda: client.config_history("r55-x", limit="5"),
            "subscribe(callback=None)": lambda: client.subscribe("r55-args", None),
            "config_listen(callback=42)": lambda: client.config_listen("r55-x", 42),
            # callable, but not with what it is called with (a new user's review)
            "subscribe(callback=lambda: ...)": lambda: client.subscribe("r55-args", lambda: 1),
            "config_listen(callback=lambda c: ...)": lambda: client.config_listen(
                "r55-x", lambda content: 1
            ),
        }
        wrong = {}
        for name, call in cases.items():
            try:
                call()
                wrong[name] = "returned normally"
            except MeshregError:
                pass  # InvalidArgumentError (or another MeshregError naming the argument)
            except TypeError as exc:  # at once, for a callback that is not callable: fine
                if "callback" not in name:
                    wrong[name] = f"TypeError: {exc}"
            except Exception as exc:  # noqa: BLE001 (the finding)
                wrong[name] = f"{type(exc).__name__}: {exc}"
        assert not wrong, (
            f"bad arguments should raise InvalidArgumentError before anything is sent (a "
            f"callback that cannot be called: at least a TypeError at once) "
            f"(README: 'bad arguments are caught before they are sent'); got {wrong}"
        )
    finally:
        client.close()
