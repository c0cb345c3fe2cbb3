"""review58 F4 (low, operations): the reload WARNING names settings by names that are not
in node.toml: `config_keep_revisions`, `config_max_configs`, `config_force_ready`,
`log_level`, `node_id`, beside `health.check_interval`, `cluster.peer_timeout`,
`limits.max_sessions` (table.key, as the file spells them).

deploy/README.md: "`systemctl reload meshreg-node` rereads the ACL; any other setting
changed in node.toml since the start is named in a WARNING as waiting for a restart".
node.toml has `[config] keep_revisions`, `[config] max_configs`, `[config] force_ready`,
`[node] log_level`, `[cluster] node_id`: no key `config_keep_revisions` anywhere.

Observed (deploy/node.toml adapted, edited, `kill -HUP`):
  WARNING meshreg.node: reload: .../node.toml changed in settings a reload does not
  apply: config_force_ready False -> True; config_max_configs 100000 -> 5000;
  health.check_interval 5.0 -> 4.0; log_level 'INFO' -> 'WARNING'; node_id '' ->
  'alpha'; restart the node to apply them (a reload rereads only the ACL file)
An operator who greps node.toml (or the docs) for `config_max_configs` finds nothing;
`node_id ''` is not the id the node runs with (127.0.0.1:PORT).
Expected: every setting named as `table.key` of the file (`config.keep_revisions`,
`node.log_level`, `cluster.node_id`).
"""

from __future__ import annotations

import signal

import pytest
from helpers import NodeProcess, free_port_pair, wait_until

TOML = """[node]
host = "127.0.0.1"
port = {port}
log_level = "{level}"
data_dir = "{data}"

[health]
check_interval = {check}

[config]
keep_revisions = {keep}
"""


@pytest.mark.timeout(60)
def test_reload_warning_names_settings_as_node_toml_spells_them(tmp_path) -> None:
    port = free_port_pair()
    conf = tmp_path / "node.toml"
    values = {"port": port, "data": tmp_path / "d", "level": "INFO", "check": 5.0, "keep": 100}
    conf.write_text(TOML.format(**values))
    node = NodeProcess("--config", str(conf), port=port)
    try:
        node.start()
        conf.write_text(TOML.format(**{**values, "level": "DEBUG", "check": 4.0, "keep": 50}))
        node.signal(signal.SIGHUP)
        line = wait_until(
            lambda: next((ln for ln in node.log().splitlines() if "reload does not apply" in ln),
                         None), 15, 0.05, "the reload WARNING")  # fmt: skip
        assert "health.check_interval 5.0 -> 4.0" in line, line  # table.key: found in the file
        wrong = [w for w in ("config_keep_revisions", " log_level") if w in line]
        assert not wrong, (
            f"the reload WARNING names {wrong}, keys node.toml does not have "
            f"([config] keep_revisions, [node] log_level): {line[line.find('reload') :]}"
        )
    finally:
        node.cleanup()
