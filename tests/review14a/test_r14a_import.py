"""review14a: `meshreg config import` of hostile or odd archives (the CLI as a process)."""

from __future__ import annotations

import json
import resource
import subprocess
import zipfile
from pathlib import Path

from helpers import NodeProcess, meshreg_cmd, raw_request
from util14a import MiB, req


def _import(
    path: Path, node: NodeProcess, namespace: str, cap: int | None = None
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if cap is not None:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return subprocess.run(
        meshreg_cmd("config", "import", str(path), "-s", node.address, "-n", namespace, "--json"),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
    )


def test_a_7_mb_archive_does_not_make_import_hold_gigabytes(
    node: NodeProcess, tmp_path: Path
) -> None:
    """F5: 150 members of 10 MiB - 1 KiB each (under the archive's 10 MiB per-content
    check), all compressible: a 6.9 MB zip at level 1.  `config import` reads and checks
    every content into memory before writing anything, so it needs ~1.5 GB (and 100,000
    such members, the archive's item limit, ~1 TB).  The client's own cap (`--max-bytes`,
    default 1 MiB, the nodes' default) already says none of them can be written: the
    import must refuse the archive from the members' declared sizes, with a clear error,
    before inflating them.  On main, with the CLI's address space capped at 1 GiB: a
    MemoryError traceback."""
    path = tmp_path / "bomb.zip"
    blob = b"a" * (10 * MiB - 1024)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for i in range(150):
            zf.writestr(f"configs/DEFAULT_GROUP/b{i}", blob)
    size = path.stat().st_size
    out = _import(path, node, "r14a-bomb", cap=1024 * MiB)
    assert "Traceback" not in out.stderr and "MemoryError" not in out.stderr, (
        f"a {size}-byte archive (150 x 10 MiB of 'a') made `config import` run out of a "
        f"1 GiB address space (exit {out.returncode}):\n{out.stderr[-1500:]}"
    )
    assert out.returncode == 1 and "meshreg: error:" in out.stderr, (out.returncode, out.stderr)
    listed = raw_request(node.port, req("config_list", namespace="r14a-bomb"))
    assert listed["ok"] and listed["result"]["items"] == [], "nothing may be written"


def test_an_archive_whose_metadata_version_is_true_is_refused(
    node: NodeProcess, tmp_path: Path
) -> None:
    """F6 (low): `"version": true` is read as format version 1 (Python's True == 1): the
    metadata's types are checked everywhere else (`"version": "3"` is refused, naming the
    versions it reads)."""
    path = tmp_path / "v.zip"
    meta = {
        "format": "meshreg-configs",
        "version": True,
        "namespace": "public",
        "items": [
            {
                "group": "DEFAULT_GROUP",
                "data_id": "vt",
                "file": "configs/DEFAULT_GROUP/vt",
                "type": "text",
            }
        ],
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("meshreg-configs.json", json.dumps(meta))
        zf.writestr("configs/DEFAULT_GROUP/vt", "x")
    out = _import(path, node, "r14a-vtrue")
    assert out.returncode == 1 and "format version" in out.stderr, (
        f'an archive with "version": true was imported (exit {out.returncode}): {out.stdout}'
    )
