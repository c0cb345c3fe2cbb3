"""`meshreg stats --format prometheus --output F` against a real node (review24 F5): the
file is the node's exposition, replaced atomically; a node that does not answer leaves
`meshreg_up 0` there and exit 1 (the textfile collector then shows it down)."""

from __future__ import annotations

import pytest
from helpers import HOST, NodeProcess, free_port_pair, run_cli
from test_metrics import parse, value


@pytest.mark.timeout(60)
def test_the_textfile_is_written_then_says_down(tmp_path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "d"))
    prom = tmp_path / "meshreg.prom"
    try:
        node.start()
        out = run_cli("stats", "-s", node.address, "--format", "prometheus", "--output", str(prom))
        assert out.returncode == 0 and out.stdout == "", out
        families = parse(prom.read_text())
        assert value(families, "meshreg_up", node=node.address) == 1
        assert value(families, "meshreg_ready") == 1
        assert value(families, "meshreg_config_ready") == 1
        assert value(families, "meshreg_requests_total", op="stats") >= 1
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no tmp
        assert oct(prom.stat().st_mode & 0o777) == "0o644"
        text = run_cli("stats", "-s", node.address).stdout  # the text shows renewals too
        assert "beats/s         0.0 (session renewals/s 0.0)" in text, text
    finally:
        node.cleanup()
    silent = f"{HOST}:{free_port_pair()}"
    out = run_cli("stats", "-s", silent, "--timeout", "0.5", "--format", "prometheus",
                  "--output", str(prom))  # fmt: skip
    assert out.returncode == 1, out
    assert parse(prom.read_text()) == {"meshreg_up": ("gauge", [({"node": silent}, 0.0)])}
