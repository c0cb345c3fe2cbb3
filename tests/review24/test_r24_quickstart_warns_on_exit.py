"""review24 F6: the README's Python quick start, run as written, ends by printing a
WARNING to stderr about the client's own deregistration.

README "30-second quick start", From Python: register, instances, subscribe, then
"leaving the block deregisters what this client registered".  Leaving the block removes
the client's own instance; the push of that change reaches the client's own subscription,
and push-empty protection logs (through Python's last-resort handler, since the script
configures no logging) "a push from ... would empty it; keeping the last list until a
fresh query confirms it".  Every clean shutdown of an app that registers and also
watches its own service prints a warning that reads like a registry fault; the client
knows it made that change itself (it just sent the deregistration / session close).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from helpers import NodeProcess

SNIPPET = textwrap.dedent(
    """
    import sys
    from meshreg import Client

    with Client([sys.argv[1]], namespace="public", group="DEFAULT_GROUP") as c:
        c.register("orders", "10.0.0.5", 8080, weight=1.0, metadata={"zone": "a"})
        print(c.instances("orders"))                 # healthy, enabled instances
        c.subscribe("orders", lambda xs: print("now", [i.address for i in xs]))
    """
)


@pytest.mark.timeout(60)
def test_the_readme_quick_start_exits_quietly(tmp_path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "d"))
    try:
        node.start()
        out = subprocess.run([sys.executable, "-c", SNIPPET, node.address],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "10.0.0.5" in out.stdout
        assert out.stderr.strip() == "", (
            f"the README quick start printed to stderr on a clean exit:\n{out.stderr}"
        )
    finally:
        node.cleanup()
