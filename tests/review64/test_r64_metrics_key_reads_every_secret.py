"""review64 F3 (medium, least privilege): the key that scrapes metrics must be able to
read every tenant's configs (passwords, connection strings) and instance lists.

README "Monitoring": "With keys, give it a client key whose ACL entry may read every
namespace (`stats` is node-wide)"; docs/SECURITY.md's own example entry is
`name = "monitoring"`, `allow = [{ namespace = "*", access = "read" }]`.  `stats`
(`meshreg stats --format prometheus`, deploy/meshreg-metrics.service) needs read on
namespace, group and service `*`, and the access levels are read < write < admin only:
no ACL entry lets a key read `stats` without also reading every config of every tenant.
So the metrics timer on every node host holds a key to all tenants' secrets; a leak of
that file (it sits next to node_exporter, often run by another team) is a leak of every
tenant.  Consul separates `operator:read`/`agent:read` (metrics, members) from
`key:read`; Nacos's monitoring endpoints do not need a tenant's config permission.

Expected: a key may be granted node figures (stats, cluster counts) without config
contents.  This test gives the monitoring key exactly the documented entry and checks
that it can scrape `stats` but not read team-b's secret config.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import RawDealer, run_cli, wait_until

from .r64lib import ACL, curve, tenant_nodes

pytestmark = pytest.mark.timeout(90)


def test_the_metrics_key_does_not_read_tenants_secrets(tmp_path: Path) -> None:
    # the entry docs/SECURITY.md gives the metrics key since the fix: stats, nothing else
    monitoring = ('\n[[client]]\nname = "monitoring"\nkey_file = "monitoring.pub"\n'
                  'allow = []\nstats = true\n')  # fmt: skip
    run_cli("keygen", str(tmp_path / "monitoring"))
    (node,) = tenant_nodes(tmp_path, 1)
    b = RawDealer(node.port, curve(tmp_path, "team-b"))
    try:
        (tmp_path / "acl.toml").write_text(ACL + monitoring)
        node.signal(1)  # SIGHUP: reload the ACL with the monitoring entry
        wait_until(lambda: "4 clients" in node.log(), 20, 0.1, "the ACL reloaded")
        r = b.call("config_publish", 10, namespace="team-b", data_id="db.properties",
                   content="password=hunter2")  # fmt: skip
        assert r["ok"], r
        common = ("--key", str(tmp_path / "monitoring.key"),
                  "--server-key", str(tmp_path / "cluster.pub"), "-s", node.address)  # fmt: skip
        scrape = run_cli("stats", "--format", "prometheus", *common)
        assert scrape.returncode == 0, scrape.stderr  # what the key is for: works
        assert "meshreg_up" in scrape.stdout and "meshreg_instances" in scrape.stdout
        assert "meshreg_stats_refused" not in scrape.stdout
        secret = run_cli("config", "get", "db.properties", "-n", "team-b", *common)
        assert secret.returncode != 0 and "hunter2" not in secret.stdout, (
            "the metrics key (SECURITY.md's `monitoring` entry, needed for `meshreg stats`) "
            f"read team-b's secret config: {secret.stdout!r}"
        )
        assert "PERMISSION_DENIED" in secret.stderr or "may not" in secret.stderr, secret.stderr
        listed = run_cli("instances", "anything", "-n", "team-b", *common)
        assert listed.returncode != 0, listed.stdout
    finally:
        b.close()
        node.cleanup()
