"""`meshreg stats --format prometheus --output F` against a real node (review24 F5): the
file is the node's exposition, replaced atomically; a node that does not answer leaves
`meshreg_up 0` there and exit 1 (the textfile collector then shows it down)."""

from __future__ import annotations

import pytest
from helpers import HOST, NodeProcess, free_port_pair, run_cli, wait_until
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


@pytest.mark.timeout(60)
def test_a_key_that_may_not_read_stats_is_not_said_down(tmp_path) -> None:
    """review61 F7: a metrics key whose ACL entry may not read stats got `meshreg_up 0`,
    the documented "node down" signal, for a node that answered: up 1, and
    `meshreg_stats_refused{code="PERMISSION_DENIED"} 1` (and exit 1, said on stderr)."""
    for name in ("cluster", "metrics"):
        out = run_cli("keygen", str(tmp_path / name))
        assert out.returncode == 0, out
    (tmp_path / "acl.toml").write_text(
        '[[client]]\nname = "metrics"\nkey_file = "metrics.pub"\nallow = []\n'
    )
    node = NodeProcess("--key", str(tmp_path / "cluster.key"), "--acl",
                       str(tmp_path / "acl.toml"), "--data-dir", str(tmp_path / "d"))  # fmt: skip
    prom = tmp_path / "meshreg.prom"
    try:
        node.launch()  # (keyed: the plain ping of start() would not be answered)
        wait_until(lambda: "serving requests" in node.log(), 20, what="the keyed node serving")
        out = run_cli("stats", "-s", node.address, "--key", str(tmp_path / "metrics.key"),
                      "--server-key", str(tmp_path / "cluster.pub"), "--format", "prometheus",
                      "--output", str(prom))  # fmt: skip
        assert out.returncode == 1 and "PERMISSION_DENIED" in out.stderr, out
        families = parse(prom.read_text())
        assert value(families, "meshreg_up", node=node.address) == 1, families
        refused = value(families, "meshreg_stats_refused", node=node.address,
                        code="PERMISSION_DENIED")  # fmt: skip
        assert refused == 1, families
    finally:
        node.cleanup()


def test_output_with_the_text_format_is_a_usage_error(tmp_path) -> None:
    """review61 F6: it exited 1 (after asking the node), as a failure; usage errors exit 2."""
    out = run_cli("stats", "-s", f"{HOST}:{free_port_pair()}", "--output", str(tmp_path / "t"))
    assert out.returncode == 2 and "--output goes with --format json or prometheus" in out.stderr
