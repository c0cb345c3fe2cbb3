"""review55 F5 (low, docs): docs/CONFIG.md's method table gives ``config_publish`` a
default ``type="text"``; the code's default is ``None`` ("the type the config has (text
for a new one), kept by its owner node in the same write").  A developer who follows the
table expects a publish without ``type`` to make the config text again; it keeps yaml
(seen: publish "a: 1" type="yaml", then publish "a: 2" without type -> type "yaml").
The table and the signature should say the same.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from meshreg import Client

DOC = Path(__file__).resolve().parents[2] / "docs" / "CONFIG.md"


def test_the_config_method_table_gives_the_code_s_defaults() -> None:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `config_")]
    assert rows, "docs/CONFIG.md's table of config methods not found"
    wrong = []
    for row in rows:
        for name, args in re.findall(r"`(config_\w+)\(([^)]*)\)`", row):
            params = inspect.signature(getattr(Client, name)).parameters
            for k, v in re.findall(r"(\w+)=([^,]+)", args):
                if k in params and repr(params[k].default) != v.strip().replace('"', "'"):
                    wrong.append(f"{name}: table {k}={v.strip()}, code {params[k].default!r}")
    assert not wrong, f"docs/CONFIG.md's method table and the code disagree: {wrong}"
