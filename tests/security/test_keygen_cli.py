"""``meshreg keygen NAME [--force]``: in-process (click) and as a real process."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from meshreg.cli import main
from meshreg.security.keys import load_public_key, load_secret_key


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_keygen_with_click(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["keygen", str(tmp_path / "orders-app")])
    assert result.exit_code == 0, result.output
    key_path, pub_path = tmp_path / "orders-app.key", tmp_path / "orders-app.pub"
    assert mode(key_path) == 0o600 and mode(pub_path) == 0o644
    public = load_public_key(pub_path).decode()
    assert load_secret_key(key_path).public.decode() == public
    out = result.output
    assert str(key_path) in out and str(pub_path) in out and public in out
    assert f"Keep {key_path} secret" in out and f"Give {pub_path}" in out
    secret = load_secret_key(key_path).secret
    assert secret is not None and secret.decode() not in out  # never printed

    again = runner.invoke(main, ["keygen", str(tmp_path / "orders-app")])
    assert again.exit_code == 1
    assert "already exists" in again.output and "--force" in again.output
    assert load_public_key(pub_path).decode() == public  # untouched

    forced = runner.invoke(main, ["keygen", "--force", str(tmp_path / "orders-app")])
    assert forced.exit_code == 0, forced.output
    assert load_public_key(pub_path).decode() != public
    assert mode(key_path) == 0o600


def test_keygen_missing_directory_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["keygen", str(tmp_path / "no" / "x")])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert result.output.startswith("meshreg: error: keygen: directory")


def test_keygen_help_lists_the_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "keygen" in result.output


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshreg", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keygen_as_a_process(tmp_path: Path) -> None:
    first = run("keygen", "cluster", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert mode(tmp_path / "cluster.key") == 0o600
    assert mode(tmp_path / "cluster.pub") == 0o644
    public = load_public_key(tmp_path / "cluster.pub").decode()
    assert public in first.stdout and "cluster.key" in first.stdout
    second = run("keygen", "cluster", cwd=tmp_path)
    assert second.returncode == 1
    assert "cluster.key already exists" in second.stderr and "Traceback" not in second.stderr
    third = run("keygen", "cluster", "--force", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert load_public_key(tmp_path / "cluster.pub").decode() != public
