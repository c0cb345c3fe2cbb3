"""deploy/: the shipped systemd unit and the example config work together.

An outside review (review12) found that the unit could not start a node: it made the file
system read-only (``ProtectSystem=strict``, ``ProtectHome=true``) without granting any
writable directory, and node.toml set no ``data_dir``, so the node's default data
directory (under ``~/.local/state``) was read-only and the node exited at start ("cannot
use data dir ...: Read-only file system"), restarted every 2 s by ``Restart=on-failure``
(emulated there with a read-only tmpfs as HOME in a mount namespace: no systemd in the VM).
node.toml also claimed every key and lacked [cluster] and [config].
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from pathlib import Path

import pytest

from meshreg.config import load_node_config
from meshreg.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _unit() -> configparser.RawConfigParser:
    unit = configparser.RawConfigParser(strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "meshreg-node.service")
    return unit


def test_the_systemd_unit_gives_the_node_a_writable_data_dir() -> None:
    service = _unit()["Service"]
    node = tomllib.loads((DEPLOY / "node.toml").read_text()).get("node", {})
    exec_start = service.get("ExecStart", "")
    data_dir = node.get("data_dir") or (
        exec_start.split("--data-dir", 1)[1].split()[0] if "--data-dir" in exec_start else None
    )
    if service.get("ProtectSystem") != "strict":
        return  # the file system is writable where the node's user may write
    writable = [f"/var/lib/{d}" for d in service.get("StateDirectory", "").split()]
    writable += service.get("ReadWritePaths", "").split()
    assert data_dir and any(str(data_dir).startswith(w) for w in writable if w), (
        f"ProtectSystem=strict makes everything read-only; writable: {writable or 'nothing'}; "
        f"the node's data dir: {data_dir or 'the default under ~/.local/state (ProtectHome=true)'}"
    )


def test_the_example_config_loads_with_every_commented_key_uncommented(tmp_path: Path) -> None:
    """node.toml shows every key: uncommented, each must be one the node accepts (a key
    renamed in the code and not here would be refused at start)."""
    text = (DEPLOY / "node.toml").read_text()
    assert load_node_config(DEPLOY / "node.toml").data_dir == "/var/lib/meshreg"
    opened = re.sub(r"(?m)^# (\[\w+\]|\w+ = )", r"\1", text)
    assert "[cluster]" in opened and "[config]" in opened and "[limits]" in opened
    opened = opened.replace('key = "cluster.key"', "").replace('acl = "acl.toml"', "")
    path = tmp_path / "node.toml"
    path.write_text(opened)
    config = load_node_config(path)
    assert config.data_dir == "/var/lib/meshreg"


def test_the_unit_waits_for_the_node_to_catch_up() -> None:
    """review24 F12: Type=notify (the node sends READY=1 once caught up, runtime/node.py
    ``_systemd_ready``), so `systemctl restart` of a rolling restart waits for it."""
    service = _unit()["Service"]
    assert service.get("Type") == "notify"
    assert service.get("NotifyAccess", "main") == "main"  # the node is the main process
    assert "meshreg node" in service.get("ExecStart", "")


def test_the_metrics_timer_writes_where_the_unit_may_write() -> None:
    """review24 F5: deploy/meshreg-metrics.{service,timer} run `meshreg stats --format
    prometheus --output F` into node_exporter's textfile directory, writable there."""
    unit = configparser.RawConfigParser(strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "meshreg-metrics.service")
    service = unit["Service"]
    argv = service["ExecStart"].split()
    assert argv[1:4] == ["stats", "--format", "prometheus"]
    output = argv[argv.index("--output") + 1]
    assert output.endswith(".prom")
    writable = service.get("ReadWritePaths", "").split()
    assert any(output.startswith(w.rstrip("/") + "/") for w in writable), (output, writable)
    timer = configparser.RawConfigParser(strict=False)
    timer.read(DEPLOY / "meshreg-metrics.timer")
    assert float(timer["Timer"]["OnUnitActiveSec"]) <= 60
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.parametrize("table", ["node", "health", "cluster", "config", "limits", "security"])
def test_the_example_config_names_every_key_the_node_accepts(tmp_path: Path, table: str) -> None:
    """deploy/README and ``meshreg node --help`` say node.toml lists every key; an
    operations review found six missing (override_ttl, the self_preservation keys,
    replication_batch).  The keys accepted are read off the node's own refusal."""
    path = tmp_path / "probe.toml"
    path.write_text(f"[{table}]\nno_such_key = 1\n")
    with pytest.raises(ConfigError, match="allowed: ") as info:
        load_node_config(path)
    allowed = ast.literal_eval(str(info.value).split("allowed: ", 1)[1])
    text = (DEPLOY / "node.toml").read_text()
    section = text.split(f"[{table}]", 1)[1].split("\n[", 1)[0].split("\n# [", 1)[0]
    missing = [k for k in allowed if not re.search(rf"(?m)^#? ?{k} = ", section)]
    assert not missing, f"deploy/node.toml [{table}] lacks {missing}"
