"""review54 F2: publishing a 2 MiB file tells the user to raise a node setting that does
not exist under that name: "if your nodes allow more (config_max_content_bytes), raise
it: Client(config_max_bytes=...), CLI --max-bytes".  `meshreg config publish --help`
says the same ("Largest content sent (the nodes' config_max_content_bytes)").

The node's setting is `[config] max_content_bytes` (README "Configuration center": "Content
is capped at 1 MiB (`[config] max_content_bytes`, at most 10 MiB)"; deploy/node.toml:27).
`config_max_content_bytes` is the field of meshreg/config.py's NodeConfig (docs/CONFIG.md
:874 and PROTOCOL.md:2388 use that internal name too); a node.toml with it is refused:
"unknown key(s) ['config_max_content_bytes'] in [config]; allowed: [... 'max_content_bytes'
...]".  The node's own refusal (a content between the client's cap and the node's) names
it right: "(the node's [config] max_content_bytes; hard cap 10485760)".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import NodeProcess, run_cli


@pytest.mark.timeout(60)
def test_the_client_side_too_large_error_names_the_nodes_setting(tmp_path: Path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "data"))
    try:
        node.start()
        big = tmp_path / "big.txt"
        big.write_text("a" * (2 * 1024 * 1024))
        out = run_cli("config", "publish", "big.txt", "--file", str(big), "-s", node.address)
        assert out.returncode == 1, out
        assert "TOO_LARGE" in out.stderr, out.stderr
        assert "config_max_content_bytes" not in out.stderr and (
            "[config] max_content_bytes" in out.stderr
        ), (
            "the 2 MiB publish's error names a node setting node.toml refuses (the node's is "
            f"`[config] max_content_bytes`): {out.stderr.strip()}"
        )
        helped = run_cli("config", "publish", "--help")
        assert "config_max_content_bytes" not in helped.stdout, (
            "`config publish --help` names `config_max_content_bytes` for --max-bytes, not "
            "the node's `[config] max_content_bytes`"
        )
    finally:
        node.stop()
        node.cleanup()
