"""review24 F5: no metrics export a monitoring system can scrape.

Every system a Nacos/Consul/etcd operator runs exposes Prometheus metrics (etcd
``/metrics``, Consul ``/v1/agent/metrics?format=prometheus``, Nacos
``/nacos/actuator/prometheus``).  meshreg has no HTTP by design, and its only monitoring
surface is ``meshreg stats`` (a human table) / ``stats --json`` (one nested document of one
node, gauges and counters mixed, e.g. ``requests`` by op, ``config`` 70+ keys), read over
the ZeroMQ protocol.  There is no ``--format prometheus`` (or textfile-collector) output,
no metric names, types or help, so every operator has to write and maintain an exporter.
This test asks ``meshreg stats`` for Prometheus text exposition and checks it parses.
"""

from __future__ import annotations

import re

import pytest
from helpers import NodeProcess, run_cli

SAMPLE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.eE+-]+$")


@pytest.mark.timeout(60)
def test_stats_can_be_exported_for_prometheus(tmp_path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "d"))
    try:
        node.start()
        out = run_cli("stats", "-s", node.address, "--format", "prometheus")
        assert out.returncode == 0, (
            f"`meshreg stats --format prometheus` is not available (rc {out.returncode}):\n"
            f"{out.stderr.strip()}"
        )
        lines = [ln for ln in out.stdout.splitlines() if ln and not ln.startswith("#")]
        assert lines and all(SAMPLE.match(ln) for ln in lines), out.stdout[:2000]
        assert any(ln.startswith("meshreg_instances") for ln in lines), out.stdout[:2000]
    finally:
        node.cleanup()
