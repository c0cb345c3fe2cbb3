"""review84 F3: config writes refused by ``[limits] write_rate_per_client`` until their
budget ran out are reported as "no reply ... the outcome is unknown (it may have been
applied)", and ``meshreg config import`` tells the operator to wait for "a majority up".

Every refusal said ``written: false`` and "nothing was applied" (PROTOCOL.md 3), yet the
client's final error is the one of a node that never answered: "no reply from meshreg
server(s) X within 10s; meanwhile X refused one copy: ... write rate limit ... (another
copy may be applied); it reached X ..., which did not answer: it may be stopped,
overloaded or waiting on its peers; ... the outcome of this config_publish is unknown".
In the review (100 configs imported into a node at 3 writes/s, keyless): 36 reported
"outcome unknown", none of them applied (the node held exactly the 64 created), and
1,745 refusals for 100 writes (the import keeps 64 writes in flight; each refusal's
retry_after is the wait for one token, so they all come back together).

Expected: a write refused by the rate to the end is reported as refused (nothing
written, the rate limit named, what to do), not as an unanswered write of unknown outcome."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import NodeProcess, run_cli
from r84lib import limited_config

from meshreg import Client

pytestmark = pytest.mark.timeout(120)


def test_import_refused_by_the_write_rate_is_not_reported_unknown(tmp_path: Path) -> None:
    source = NodeProcess()
    target = NodeProcess("--config", limited_config(tmp_path, 3))
    try:
        source.launch()
        target.launch()
        source.wait_ready()
        target.wait_ready()
        with Client(source.address, timeout=10.0) as c:
            for k in range(100):
                c.config_publish(f"cfg{k}", f"v{k}")
        archive = tmp_path / "configs.zip"
        done = run_cli("config", "export", "-s", source.address, "--out", str(archive))
        assert done.returncode == 0, done.stderr
        imported = run_cli("config", "import", str(archive), "-s", target.address)
        with Client(target.address, timeout=10.0) as c:
            held = len(c.config_list())
        said = imported.stdout + imported.stderr
        unknown = [line for line in said.splitlines() if "outcome unknown" in line]
        assert not unknown and "no reply" not in said, (
            f"import into a node at 3 writes/s: {len(unknown)} data ids reported 'outcome "
            f"unknown' / 'no reply' although every refusal said nothing was written (the "
            f"node holds {held} of 100); e.g. {unknown[:1]}; summary: "
            f"{imported.stdout.strip()[:300]}"
        )
    finally:
        source.cleanup()
        target.cleanup()
