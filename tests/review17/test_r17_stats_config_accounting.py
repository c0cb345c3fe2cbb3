"""review17 F4: `stats.requests` and `stats.errors` leave out most of the configuration
center's traffic.

docs/PROTOCOL.md 2.8: `requests` "valid requests handled, by op"; `errors` "error replies
by code name"; `errors_total` "sum of errors". README: "`stats`: uptime, services,
instances (healthy/unhealthy), requests by operation, beats per second, errors by code".

Seen on one node: `config_get`, `config_publish`, `config_history` (answered ok) never
appear in `requests`; a `config_delete` answered NOT_FOUND and a `config_publish`
answered CONFLICT are not in `errors` (a `config_get` answered NOT_FOUND is). So a
dashboard or alert on `errors_total` / request rates does not see config write failures
or config load at all (only `config.rejected`, a map of reasons, has them)."""

from __future__ import annotations

from helpers import RawDealer


def _stats(d: RawDealer) -> dict:
    return d.call("stats")["result"]


def test_config_requests_and_errors_are_counted(start_node) -> None:
    node = start_node()
    d = RawDealer(node.port)
    try:
        before = _stats(d)
        assert d.call("config_publish", data_id="a", content="1", request_id="y" * 20)["ok"]
        assert d.call("config_get", data_id="a")["ok"]
        assert d.call("config_history", data_id="a")["ok"]
        r = d.call("config_delete", data_id="nope", request_id="x" * 20)
        assert r["error"]["name"] == "NOT_FOUND"
        r = d.call("config_publish", data_id="a", content="2", if_revision=5, request_id="z" * 20)
        assert r["error"]["name"] == "CONFLICT"
        after = _stats(d)
    finally:
        d.close()

    problems = []
    for op in ("config_publish", "config_get", "config_history"):
        if after["requests"].get(op, 0) <= before["requests"].get(op, 0):
            problems.append(f"requests[{op!r}] not counted")
    if after["errors"].get("NOT_FOUND", 0) - before["errors"].get("NOT_FOUND", 0) < 1:
        problems.append("the config_delete answered NOT_FOUND is not in errors")
    if after["errors"].get("CONFLICT", 0) - before["errors"].get("CONFLICT", 0) < 1:
        problems.append("the config_publish answered CONFLICT is not in errors")
    if after["errors_total"] - before["errors_total"] < 2:
        problems.append(
            f"errors_total grew by {after['errors_total'] - before['errors_total']}, not 2"
        )
    assert not problems, (
        "; ".join(problems) + f" (requests={after['requests']}, errors={after['errors']}, "
        f"config.rejected={after['config']['rejected']})"
    )
