"""CURVE key files: generate, load, validate; Z85; purity of the ACL side."""

from __future__ import annotations

import ast
import logging
import os
import stat
from pathlib import Path

import pytest
import zmq
import zmq.auth
from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.errors import ConfigError
from meshreg.security import keys
from meshreg.security.keys import (
    KeyPair,
    generate_key_files,
    load_public_key,
    load_secret_key,
    raw_to_z85,
    z85_decode,
    z85_encode,
    z85_public,
    z85_to_raw,
)

SECURITY_DIR = Path(keys.__file__).parent


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_round_trip_and_modes(tmp_path: Path) -> None:
    key_path, pub_path = generate_key_files(tmp_path / "cluster")
    assert (key_path, pub_path) == (tmp_path / "cluster.key", tmp_path / "cluster.pub")
    assert mode(key_path) == 0o600
    assert mode(pub_path) == 0o644
    pair = load_secret_key(key_path)
    assert len(pair.public) == 40 and pair.secret is not None and len(pair.secret) == 40
    assert zmq.curve_public(pair.secret) == pair.public
    assert load_public_key(pub_path) == pair.public
    assert load_public_key(key_path) == pair.public  # a .key holds the public key too
    assert pair.secret not in pub_path.read_bytes()  # the public file has no secret
    text = key_path.read_text()
    assert "KEEP THIS FILE SECRET" in text and "Certificate" in text
    assert pair.secret.decode() not in repr(pair)  # repr (logs, tracebacks) hides it


def test_modes_do_not_depend_on_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        _, pub_path = generate_key_files(tmp_path / "a")
    finally:
        os.umask(old)
    assert mode(pub_path) == 0o644
    old = os.umask(0)
    try:
        key_path, _ = generate_key_files(tmp_path / "b")
    finally:
        os.umask(old)
    assert mode(key_path) == 0o600


def test_pyzmq_reads_our_files(tmp_path: Path) -> None:
    """The files are ZeroMQ certificates: pyzmq's own loader reads them."""
    key_path, pub_path = generate_key_files(tmp_path / "node")
    pair = load_secret_key(key_path)
    assert zmq.auth.load_certificate(key_path) == (pair.public, pair.secret)
    assert zmq.auth.load_certificate(pub_path) == (pair.public, None)


def test_we_read_pyzmq_certificates(tmp_path: Path) -> None:
    public_file, secret_file = zmq.auth.create_certificates(tmp_path, "other")
    pair = load_secret_key(secret_file)
    assert load_public_key(public_file) == pair.public
    assert zmq.auth.load_certificate(secret_file) == (pair.public, pair.secret)


def test_czmq_style_certificate(tmp_path: Path) -> None:
    """As czmq's zcert_save writes it: metadata section, tab/space indent, '#' inside keys."""
    public, secret = zmq.curve_keypair()
    while b"#" not in public:  # make sure a '#' inside a quoted key is not a comment
        public, secret = zmq.curve_keypair()
    path = tmp_path / "czmq_secret"
    path.write_text(
        "#   ****  Generated on 2015-01-01 by CZMQ  ****\n"
        "#   ZeroMQ CURVE **Secret** Certificate\n\n"
        'metadata\n    email = "a@b.c"\ncurve\n'
        f'    public-key = "{public.decode()}"   # trailing comment\n'
        f"\tsecret-key = '{secret.decode()}'\n"
    )
    os.chmod(path, 0o600)
    assert load_secret_key(path) == KeyPair(public, secret)


def test_bare_public_key_file(tmp_path: Path) -> None:
    public, _ = zmq.curve_keypair()
    path = tmp_path / "pasted.pub"
    path.write_text(f"# orders-app, from meshreg keygen's output\n\n  {public.decode()}  \n")
    assert load_public_key(path) == public
    with pytest.raises(ConfigError, match="holds only a public key"):
        load_secret_key(path)  # a bare key is never taken for a secret one


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    key_path, pub_path = generate_key_files(tmp_path / "app")
    before = key_path.read_bytes(), pub_path.read_bytes()
    with pytest.raises(ConfigError, match=r"app\.key already exists.*--force"):
        generate_key_files(tmp_path / "app")
    assert (key_path.read_bytes(), pub_path.read_bytes()) == before
    # only the .pub left: still refused, and no .key is created beside it
    key_path.unlink()
    with pytest.raises(ConfigError, match=r"app\.pub already exists"):
        generate_key_files(tmp_path / "app")
    assert not key_path.exists()


def test_o_excl_loses_the_race_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A .pub appearing between the check and the write: refused, no secret key left behind."""
    real_write = keys._write_new

    def racing(path: Path, text: str, file_mode: int, force: bool) -> None:
        if path.suffix == ".pub":
            path.write_text("someone else's\n")
        real_write(path, text, file_mode, force)

    monkeypatch.setattr(keys, "_write_new", racing)
    with pytest.raises(ConfigError, match="already exists"):
        generate_key_files(tmp_path / "race")
    assert not (tmp_path / "race.key").exists()
    assert (tmp_path / "race.pub").read_text() == "someone else's\n"


def test_force_replaces_and_tightens_mode(tmp_path: Path) -> None:
    key_path, _ = generate_key_files(tmp_path / "app")
    old = load_secret_key(key_path)
    os.chmod(key_path, 0o644)  # loosened by someone: --force must not keep that
    key_path2, pub_path2 = generate_key_files(tmp_path / "app.key", force=True)
    assert key_path2 == key_path
    assert mode(key_path) == 0o600 and mode(pub_path2) == 0o644
    new = load_secret_key(key_path)
    assert new.public != old.public
    assert load_public_key(pub_path2) == new.public
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.key", "app.pub"]  # no temp files


def test_suffix_is_dropped(tmp_path: Path) -> None:
    assert generate_key_files(str(tmp_path / "x.pub"))[0] == tmp_path / "x.key"


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        generate_key_files(tmp_path / "nope" / "app")


def test_group_readable_key_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key_path, _ = generate_key_files(tmp_path / "app")
    with caplog.at_level(logging.WARNING, logger="meshreg.security"):
        load_secret_key(key_path)
    assert not caplog.records
    os.chmod(key_path, 0o640)
    with caplog.at_level(logging.WARNING, logger="meshreg.security"):
        load_secret_key(key_path)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert str(key_path) in message and "chmod 600" in message and "0640" in message


def _certificate(public: str | None, secret: str | None) -> str:
    lines = ["metadata", "curve"]
    if public is not None:
        lines.append(f'    public-key = "{public}"')
    if secret is not None:
        lines.append(f'    secret-key = "{secret}"')
    return "\n".join(lines) + "\n"


def _bad_files() -> list[tuple[str, bytes, str]]:
    public, secret = (k.decode() for k in zmq.curve_keypair())
    other_public = zmq.curve_keypair()[0].decode()
    return [
        ("empty", b"", "holds no key"),
        ("comments only", b"# nothing\n\n", "holds no key"),
        ("binary", b"\xff\xfe\x00garbage", "is not text"),
        ("huge", b"#" * (keys.MAX_KEY_FILE_BYTES + 1), "not a key file"),
        ("short key", _certificate(public[:39], secret).encode(), "40 characters"),
        ("not z85", _certificate(public[:39] + "~", secret).encode(), "not Z85"),
        ("z85 overflow", _certificate("#" * 40, secret).encode(), "not Z85"),
        ("bad secret", _certificate(public, secret[:30]).encode(), "secret-key is not"),
        ("mismatch", _certificate(other_public, secret).encode(), "does not belong"),
        (
            "twice",
            (_certificate(public, secret) + f'  public-key = "{public}"\n').encode(),
            "twice",
        ),
        ("unterminated", f'curve\n    public-key = "{public}\n'.encode(), "unterminated"),
        ("outside curve", f'public-key = "{public}"\n'.encode(), "holds no key"),
    ]


@pytest.mark.parametrize(
    "label,content,expected", _bad_files(), ids=[label for label, _, _ in _bad_files()]
)
def test_bad_key_files_name_the_path(
    tmp_path: Path, label: str, content: bytes, expected: str
) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as info:
        load_secret_key(path)
    message = str(info.value)
    assert str(path) in message
    assert expected in message
    if label not in ("bad secret", "mismatch"):
        with pytest.raises(ConfigError, match=str(path).replace(".", r"\.")):
            load_public_key(path)


def test_secret_never_echoed_in_errors(tmp_path: Path) -> None:
    public, secret = (k.decode() for k in zmq.curve_keypair())
    path = tmp_path / "bad.key"
    path.write_text(_certificate(public, secret + "x"))
    with pytest.raises(ConfigError) as info:
        load_secret_key(path)
    assert secret not in str(info.value)
    with pytest.raises(ConfigError) as info:
        z85_public(secret + "x")
    assert secret not in str(info.value)


def test_missing_file_says_what_to_try(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read key file .*nope\.key.*meshreg keygen"):
        load_secret_key(tmp_path / "nope.key")
    with pytest.raises(ConfigError, match="cannot read key file"):
        load_public_key(tmp_path)  # a directory


def test_public_only_file_for_secret_says_what_to_use(tmp_path: Path) -> None:
    _, pub_path = generate_key_files(tmp_path / "app")
    with pytest.raises(ConfigError, match=r"app\.pub holds only a public key.*NAME\.key"):
        load_secret_key(pub_path)


def test_secret_only_certificate_derives_public(tmp_path: Path) -> None:
    public, secret = zmq.curve_keypair()
    path = tmp_path / "s.key"
    path.write_text(_certificate(None, secret.decode()))
    os.chmod(path, 0o600)
    assert load_secret_key(path) == KeyPair(public, secret)
    with pytest.raises(ConfigError, match="no public-key"):
        load_public_key(path)


def test_z85_public() -> None:
    public, _ = zmq.curve_keypair()
    assert z85_public(public.decode()) == public
    assert z85_public(f"  {public.decode()}\n") == public
    for bad in ("", "abc", public.decode()[:-1] + "~", "#" * 40, public.decode() + "0"):
        with pytest.raises(ConfigError, match="not a CURVE public key"):
            z85_public(bad)
    with pytest.raises(ConfigError, match="must be a string"):
        z85_public(public)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_z85_agrees_with_libzmq(raw: bytes) -> None:
    from zmq.utils import z85

    text = z85_encode(raw)
    assert text.encode() == z85.encode(raw)
    assert z85_decode(text) == raw
    assert raw_to_z85(raw) == text.encode()
    assert z85_to_raw(text) == raw == z85_to_raw(text.encode())


def test_raw_conversions_reject_wrong_lengths() -> None:
    with pytest.raises(ValueError):
        raw_to_z85(b"x" * 31)
    with pytest.raises(ValueError):
        z85_to_raw("abcde")


def _module_imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", ["acl.py", "authz.py"])
def test_acl_and_authz_are_pure(module: str) -> None:
    names = _module_imports(SECURITY_DIR / module, top_level_only=False)
    assert not names & {"zmq", "socket", "threading", "asyncio", "time", "random"}


def test_keys_imports_zmq_only_where_needed() -> None:
    assert "zmq" not in _module_imports(SECURITY_DIR / "keys.py", top_level_only=True)
