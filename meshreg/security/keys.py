"""CURVE key files: generate, load, validate.

A node or client identity is a CURVE key pair.  ``meshreg keygen NAME``
writes two files in ZeroMQ's certificate format (ZPL, as czmq's ``zcert``
and pyzmq's ``zmq.auth.create_certificates`` write them, so existing ZeroMQ
tooling reads them)::

    NAME.key   public and secret key, mode 0600: whoever holds it *is* NAME
    NAME.pub   the public key only, mode 0644: give it to whoever must trust NAME

Keys are kept as Z85 text (40 ASCII characters for 32 key bytes), which is
what pyzmq's ``curve_publickey`` / ``curve_secretkey`` / ``curve_serverkey``
socket options take.  A file holding nothing but a 40-character Z85 public
key on one line (comments and blank lines aside) is read as a public key too,
so a key pasted from ``meshreg keygen``'s output works.

Only ``generate_key_files`` and ``load_secret_key`` need libzmq (to make a
pair and to check that a secret key belongs to its public key); they import
zmq when called, so the ACL (:mod:`meshreg.security.acl`), which reads public
keys, stays free of it.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from meshreg.errors import ConfigError

log = logging.getLogger("meshreg.security")

Z85_ALPHABET = (
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)
_Z85_INDEX = {c: i for i, c in enumerate(Z85_ALPHABET)}
Z85_KEY_LEN = 40  # characters of Z85 for a 32-byte CURVE key
RAW_KEY_LEN = 32  # bytes of a CURVE key (what a ZAP request carries)
MAX_KEY_FILE_BYTES = 64 * 1024  # bytes; a certificate is ~400; anything larger is not one

_SAFE_NAME = re.compile(r"[0-9A-Za-z@.:_\-]{1,128}\Z")  # what may go into the metadata line

_SECRET_HEADER = """\
#   ****  Generated on {when} by meshreg keygen  ****
#   ZeroMQ CURVE **Secret** Certificate (meshreg key file)
#   KEEP THIS FILE SECRET: whoever has it can act as {name!r}.
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions (0600).
#   Give {name}.pub, the public key, to whoever must trust this key.

"""

_PUBLIC_HEADER = """\
#   ****  Generated on {when} by meshreg keygen  ****
#   ZeroMQ CURVE Public Certificate (meshreg public key of {name!r})
#   Not secret: give it to whoever must trust {name!r} (a node's ACL, a client's
#   --server-key). Check it arrived unchanged before trusting it.

"""


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair as Z85 text (bytes, 40 ASCII characters each)."""

    public: bytes  # z85, 40 bytes (what pyzmq's curve_publickey option takes)
    secret: bytes | None  # z85, 40 bytes; None for a public-key-only file

    def __repr__(self) -> str:  # never print a secret key into a log or traceback
        secret = "None" if self.secret is None else "'<secret>'"
        return f"KeyPair(public={self.public!r}, secret={secret})"

    @property
    def raw_public(self) -> bytes:
        """The public key as 32 raw bytes (as a ZAP request carries it)."""
        return z85_decode(self.public.decode("ascii"))


# -- Z85 (ZeroMQ RFC 32), pure Python: only keys, so speed does not matter ------------------
def z85_decode(text: str) -> bytes:
    """Decode Z85 text (a multiple of 5 characters); ValueError if it is not Z85."""
    if len(text) % 5:
        raise ValueError("Z85 text must be a multiple of 5 characters long")
    out = bytearray()
    for start in range(0, len(text), 5):
        value = 0
        for char in text[start : start + 5]:
            index = _Z85_INDEX.get(char)
            if index is None:
                raise ValueError(f"{char!r} is not a Z85 character")
            value = value * 85 + index
        if value > 0xFFFFFFFF:
            raise ValueError("Z85 group out of range")
        out += value.to_bytes(4, "big")
    return bytes(out)


def z85_encode(data: bytes) -> str:
    """Encode bytes (a multiple of 4 long) as Z85 text."""
    if len(data) % 4:
        raise ValueError("Z85 encodes a multiple of 4 bytes")
    chars: list[str] = []
    for start in range(0, len(data), 4):
        value = int.from_bytes(data[start : start + 4], "big")
        group = []
        for _ in range(5):
            value, index = divmod(value, 85)
            group.append(Z85_ALPHABET[index])
        chars.extend(reversed(group))
    return "".join(chars)


def _key_problem(text: str) -> str | None:
    """Why ``text`` is not a Z85 CURVE key, or None if it is one."""
    if len(text) != Z85_KEY_LEN:
        return f"it must be {Z85_KEY_LEN} characters of Z85, got {len(text)} characters"
    try:
        z85_decode(text)
    except ValueError as exc:
        return f"it is not Z85 ({exc})"
    return None


def z85_public(text: str) -> bytes:
    """Validate a CURVE public key given inline (e.g. an ACL's ``key = "..."``).

    Returns it as Z85 bytes; raises ConfigError saying what is wrong (the
    key itself is never echoed: a secret key pasted by mistake must not end up
    in a log).
    """
    if not isinstance(text, str):
        raise ConfigError(
            f"a CURVE public key must be a string of {Z85_KEY_LEN} Z85 characters, "
            f"got {type(text).__name__}"
        )
    text = text.strip()
    problem = _key_problem(text)
    if problem is not None:
        raise ConfigError(
            f"not a CURVE public key: {problem}; copy the public-key value from a .pub "
            "file written by `meshreg keygen`"
        )
    return text.encode("ascii")


def z85_to_raw(key: bytes | str) -> bytes:
    """A Z85 key (bytes or text) as 32 raw bytes; ValueError if it is not a key."""
    text = key.decode("ascii") if isinstance(key, bytes) else key
    problem = _key_problem(text)
    if problem is not None:
        raise ValueError(f"not a CURVE key: {problem}")
    return z85_decode(text)


def raw_to_z85(raw: bytes) -> bytes:
    """32 raw key bytes (as ZAP hands them over) as Z85 bytes."""
    if len(raw) != RAW_KEY_LEN:
        raise ValueError(f"a CURVE key is {RAW_KEY_LEN} bytes, got {len(raw)}")
    return z85_encode(raw).encode("ascii")


# -- files -------------------------------------------------------------------------------------
def _key_paths(name: str | Path) -> tuple[Path, Path]:
    base = Path(name)
    if base.suffix in (".key", ".pub"):  # `meshreg keygen cluster.key` means cluster.{key,pub}
        base = base.with_suffix("")
    if not base.name or base.name in (".", ".."):
        raise ConfigError(f"keygen: {str(name)!r} is not a file name; give one such as 'cluster'")
    return base.with_name(base.name + ".key"), base.with_name(base.name + ".pub")


def _certificate(header: str, public: str, secret: str | None, name: str) -> str:
    lines = [header, "metadata\n"]
    if _SAFE_NAME.match(name):
        lines.append(f'    name = "{name}"\n')
    lines.append("curve\n")
    lines.append(f'    public-key = "{public}"\n')
    if secret is not None:
        lines.append(f'    secret-key = "{secret}"\n')
    return "".join(lines)


def _write_new(path: Path, text: str, mode: int, force: bool) -> None:
    """Write ``text`` to ``path`` with exactly ``mode``.

    Without ``force`` the file is created with O_EXCL (an existing key is never
    overwritten).  With ``force`` it is written to a temporary file that is
    renamed over the old one: truncating the old file in place would keep its
    old, possibly looser, permissions.
    """
    data = text.encode("ascii")
    if force:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        target = tmp
    else:
        target = path
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(fd, mode)  # exactly `mode`, whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    os.close(fd)
    if force:
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def generate_key_files(name: str | Path, force: bool = False) -> tuple[Path, Path]:
    """Writes NAME.key (public+secret, mode 0600, created with O_EXCL unless force) and
    NAME.pub (public only, 0644); returns the paths.

    A trailing ``.key`` or ``.pub`` on NAME is dropped (``cluster.key`` writes
    ``cluster.key`` and ``cluster.pub``).  Raises ConfigError if a file exists
    (and not ``force``) or the directory cannot be written; nothing is left
    half-written.
    """
    import zmq  # only here and in load_secret_key: the ACL side stays free of libzmq

    key_path, pub_path = _key_paths(name)
    parent = key_path.parent
    if not parent.is_dir():
        raise ConfigError(f"keygen: directory {str(parent)!r} does not exist; create it first")
    if not force:
        for path in (key_path, pub_path):
            if os.path.lexists(path):
                raise ConfigError(
                    f"keygen: {path} already exists; not overwriting a key (it may be in use). "
                    "Choose another name, or pass --force to replace both files"
                )
    public, secret = (k.decode("ascii") for k in zmq.curve_keypair())
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    label = key_path.name[: -len(".key")]
    try:
        _write_new(
            key_path,
            _certificate(_SECRET_HEADER.format(when=when, name=label), public, secret, label),
            0o600,
            force,
        )
        try:
            _write_new(
                pub_path,
                _certificate(_PUBLIC_HEADER.format(when=when, name=label), public, None, label),
                0o644,
                force,
            )
        except BaseException:
            key_path.unlink(missing_ok=True)  # no secret key without its public half
            raise
    except FileExistsError as exc:
        raise ConfigError(
            f"keygen: {exc.filename} already exists; not overwriting a key (it may be in use). "
            "Choose another name, or pass --force to replace both files"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"keygen: cannot write {exc.filename or key_path}: {exc.strerror}; "
            "check the directory exists and is writable"
        ) from None
    return key_path, pub_path


def _parse_key_file(path: Path) -> tuple[str | None, str | None]:
    """(public, secret) Z85 texts from a certificate or a bare-key file, unvalidated.

    Raises ConfigError for an unreadable file, a file that is no certificate,
    or a key given twice.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        hint = (
            "; create it with `meshreg keygen NAME`"
            if isinstance(exc, FileNotFoundError)
            else "; check the path and its permissions"
        )
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}{hint}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigError(
            f"key file {path} is over {MAX_KEY_FILE_BYTES} bytes: not a key file "
            "(one written by `meshreg keygen` is about 400 bytes)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"key file {path} is not text: expected a ZeroMQ certificate as written by "
            "`meshreg keygen`"
        ) from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) == 1 and _key_problem(lines[0].strip()) is None:
        return lines[0].strip(), None  # a bare Z85 public key
    section = ""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line[0].isspace():
            if "=" not in stripped:
                section = stripped  # a ZPL section at the top level: "metadata", "curve"
                continue
            section = ""  # a property of the root, not of the curve section
        name, eq, value = stripped.partition("=")
        name = name.strip()
        if not eq or section != "curve" or name not in ("public-key", "secret-key"):
            continue  # metadata and anything else is not ours to judge
        value = value.strip()
        if value[:1] in ('"', "'"):
            end = value.find(value[0], 1)
            rest = value[end + 1 :].strip() if end > 0 else "#"
            if end < 0 or (rest and not rest.startswith("#")):
                raise ConfigError(
                    f"key file {path}, line {number}: {name} has an unterminated or "
                    "malformed quoted value"
                )
            value = value[1:end]
        else:
            value = value.split()[0] if value else ""
        if name in found:
            raise ConfigError(f"key file {path}, line {number}: {name} is given twice")
        found[name] = value
    if not found:
        raise ConfigError(
            f"key file {path} holds no key: expected a ZeroMQ certificate with a 'curve' "
            "section (public-key, secret-key) as written by `meshreg keygen`, or one "
            "40-character Z85 public key on a line"
        )
    return found.get("public-key"), found.get("secret-key")


def _checked(path: Path, what: str, text: str | None) -> bytes | None:
    if text is None:
        return None
    problem = _key_problem(text)
    if problem is not None:
        raise ConfigError(
            f"key file {path}: {what} is not a CURVE key: {problem}; the file is damaged: "
            "generate a new pair with `meshreg keygen NAME`"
        )
    return text.encode("ascii")


def load_secret_key(path: str | Path) -> KeyPair:
    """The key pair in ``path`` (a NAME.key written by ``meshreg keygen``).

    ConfigError naming the path and what to try if the file is missing, is no
    certificate, holds only a public key, or its secret key does not belong to
    its public key.  Logs a warning if group or others may read it.
    """
    import zmq

    path = Path(path)
    public_text, secret_text = _parse_key_file(path)
    secret = _checked(path, "secret-key", secret_text)
    public = _checked(path, "public-key", public_text)
    if secret is None:
        raise ConfigError(
            f"key file {path} holds only a public key; --key needs the secret key file "
            "NAME.key written by `meshreg keygen NAME` (NAME.pub is for others to trust you)"
        )
    derived = zmq.curve_public(secret)
    if public is None:
        public = derived
    elif public != derived:
        raise ConfigError(
            f"key file {path}: its secret-key does not belong to its public-key (the file "
            "was edited or damaged); generate a new pair with `meshreg keygen NAME`"
        )
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:  # pragma: no cover - it was just read
        mode = 0
    if mode & 0o077:
        log.warning(
            "key file %s is readable by others (mode %04o): anyone who can read it can act "
            "as this key; run: chmod 600 %s",
            path,
            mode,
            path,
        )
    return KeyPair(public, secret)


def load_public_key(path: str | Path) -> bytes:
    """The Z85 public key in ``path``: a NAME.pub, a NAME.key, or a bare-key file."""
    path = Path(path)
    public_text, secret_text = _parse_key_file(path)
    public = _checked(path, "public-key", public_text)
    if public is None:
        raise ConfigError(
            f"key file {path} has a secret-key but no public-key; use the NAME.pub written "
            "next to it by `meshreg keygen NAME`"
        )
    return public
