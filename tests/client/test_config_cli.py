"""``meshreg config``, the export archive and the config disk cache, without a node:
usage errors, bad archives refused whole, import policies on a fake client, and a client
that starts while no node answers served from its disk copy."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import free_port_pair

from meshreg.cli import main
from meshreg.client.config_archive import (
    METADATA,
    ArchiveError,
    ArchiveGray,
    ArchiveItem,
    archive_bytes,
    export_namespace,
    import_items,
    read_archive,
)
from meshreg.client.configs import ConfigInfo, ConfigPage, GrayInfo, MainInfo
from meshreg.client.disk_cache import DiskCache
from meshreg.configcenter.model import ConfigKey, content_md5
from meshreg.errors import (
    ConflictError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    ServerError,
    ServerUnreachableError,
)

KEY = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")


def info(data_id: str, content: str, revision: int = 1, group: str = "DEFAULT_GROUP",
         **kw: Any) -> ConfigInfo:  # fmt: skip
    return ConfigInfo("public", group, data_id, content, kw.pop("type", "text"),
                      content_md5(content), revision, 1.0, **kw)  # fmt: skip


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["config", *args])


# -- usage --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["publish", "x"], "exactly one of --file F or --content S"),
        (["publish", "x", "--content", "a", "--file", "f"], "exactly one of"),
        (["publish", "x", "--content", "a", "--tag", "novalue"], "expected KEY=VALUE"),
        (["publish", "x", "--content", "a", "--type", "ini"], "'ini' is not one of"),
        (["gray", "x", "--content", "a"], "--label K=V and/or --client HOST"),
        (["rollback", "x", "0"], "0 is not in the range"),
        (["import", "f.zip", "--on-conflict", "merge"], "'merge' is not one of"),
        (
            ["publish", "x", "--content", "a", "--request-id", "short"],
            "'request_id' must be a string of 16..64",
        ),
        (["delete", "x", "--request-id", "0123456789abcdef/"], "Invalid value for --request-id"),
        (["force-ready", "-s", "127.0.0.1:1,127.0.0.1:2"], "exactly one -s host:port"),
    ],
)
def test_usage_errors_say_what_to_give(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_delete_prints_no_md5_of_the_empty_content(capsys: pytest.CaptureFixture[str]) -> None:
    """review45 F10: `config delete` printed "(md5 d41d8cd9...)", the md5 of "", while the
    JSON of a tombstone says ``"md5": null``."""
    from meshreg.cli_config import _written

    _written("deleted", info("w.yaml", "", 3, deleted=True, change="delete"), False)
    _written("published", info("w.yaml", "a: 1", 4), False)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "deleted public/DEFAULT_GROUP/w.yaml: revision 3", out
    md5 = content_md5("a: 1")
    assert out[1] == f"published public/DEFAULT_GROUP/w.yaml: revision 4 (md5 {md5})"


def test_a_file_that_is_not_utf8_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"ok\xff\xfe")
    result = invoke("publish", "x", "--file", str(path))
    assert result.exit_code == 2
    assert "blob.bin is not UTF-8 text (byte 2)" in result.output


def test_an_invalid_name_is_refused_before_anything_is_sent() -> None:
    port = free_port_pair()  # nothing listens: the check happens first
    result = invoke("publish", "bad/name", "--content", "a", "-s", f"127.0.0.1:{port}")
    assert result.exit_code == 1
    assert "data_id" in result.output and "letters, digits" in result.output


def test_a_read_no_node_answers_names_the_server_and_the_data_id() -> None:
    port = free_port_pair()
    result = invoke("get", "app.yaml", "-s", f"127.0.0.1:{port}", "--timeout", "0.3")
    assert result.exit_code == 1
    assert f"127.0.0.1:{port}" in result.output and "public/DEFAULT_GROUP/app.yaml" in result.output
    assert "meshreg node" in result.output  # what to try


# -- a start while no node answers: the disk copy --------------------------------------------------
def test_a_client_started_while_no_node_answers_gets_its_disk_copy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    DiskCache(tmp_path).save_config(KEY, info("app.yaml", "a: 1\n", 4, type="yaml"))
    port = free_port_pair()
    result = invoke("get", "app.yaml", "-s", f"127.0.0.1:{port}", "--timeout", "0.3",
                    "--cache-dir", str(tmp_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == "a: 1\n"
    assert "disk cache copy (revision 4)" in result.stderr
    from meshreg import Client

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="meshreg.client"):
        c = Client([f"127.0.0.1:{port}"], timeout=0.3, cache_dir=tmp_path)
        try:
            first = c.config_get("app.yaml")
            again = c.config_get("app.yaml")
            got: list[tuple[str | None, int]] = []
            current = c.config_listen("app.yaml", lambda content, rev: got.append((content, rev)))
            with pytest.raises(ServerUnreachableError, match="public/DEFAULT_GROUP/other"):
                c.config_get("other")  # no disk copy of that one
        finally:
            c.close(timeout=0.2)
    assert first.from_cache and first.content == "a: 1\n" and first.revision == 4
    assert again == first
    assert current is not None and current.from_cache and got == [("a: 1\n", 4)]
    logged = [r.getMessage() for r in caplog.records if "disk cache copy" in r.getMessage()]
    assert len(logged) == 2  # once for the reads, once for the listen
    assert all(str(KEY) in line for line in logged)


def test_the_config_disk_cache_ignores_a_file_it_cannot_trust(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    cache.save_config(KEY, info("app.yaml", "x"))
    assert cache.load_config(KEY) is not None
    path = cache.config_path(KEY)
    assert path == tmp_path / "+configs" / "public" / "DEFAULT_GROUP" / "app.yaml.json"
    body = json.loads(path.read_text())
    body["entry"]["data_id"] = "other"
    path.write_text(json.dumps(body))
    assert cache.load_config(KEY) is None  # another data id's file
    path.write_text("[" * 100_000)
    assert cache.load_config(KEY) is None
    cache.save_config(KEY, None)  # deleted: the copy goes
    assert not path.exists()


def _gray_versions(labels: dict[str, str], clients: tuple[str, ...]) -> tuple[ConfigInfo, ...]:
    """One revision with a gray version, as a node serves it to a client it does not
    select, and to one it selects (``main`` beside the gray content)."""
    gray = GrayInfo("g: 1\n", "yaml", content_md5("g: 1\n"), labels, clients)
    plain = info("app.yaml", "m: 1\n", 3, type="yaml", gray=gray)
    main = MainInfo(plain.content, plain.type, plain.md5)
    served = dataclasses.replace(plain, content=gray.content, md5=gray.md5, gray_served=True,
                                 main=main)  # fmt: skip
    return plain, served


@pytest.mark.parametrize("saver", ["plain", "gray"])
def test_the_config_disk_copy_is_served_by_the_labels_of_the_client_reading_it(
    tmp_path: Path, saver: str
) -> None:
    """review17 F1: whoever saved it, a client reading the copy is served what the rule
    gives its own labels."""
    plain, served = _gray_versions({"env": "canary"}, ())
    DiskCache(tmp_path, {"env": "canary"} if saver == "gray" else {}).save_config(
        KEY, served if saver == "gray" else plain
    )
    stable = DiskCache(tmp_path).load_config(KEY)
    canary = DiskCache(tmp_path, {"env": "canary", "zone": "a"}).load_config(KEY)
    assert stable is not None and canary is not None
    assert (stable.content, stable.gray_served, stable.from_cache) == ("m: 1\n", False, True)
    assert (canary.content, canary.md5, canary.gray_served) == ("g: 1\n", served.md5, True)
    assert canary.main == served.main


def test_a_gray_rule_naming_hosts_serves_the_copy_as_the_node_served_this_host(
    tmp_path: Path,
) -> None:
    """A rule naming hosts: the node selected this host by its address if it served the
    gray version to a client its labels do not select; every client of the copy (on this
    host) is then served it; a client of a host it did not select gets the main one."""
    plain, served = _gray_versions({"env": "canary"}, ("10.0.0.7",))
    DiskCache(tmp_path).save_config(KEY, served)  # no labels, served gray: by address
    got = DiskCache(tmp_path, {"team": "x"}).load_config(KEY)
    assert got is not None and got.content == "g: 1\n" and got.gray_served
    DiskCache(tmp_path).save_config(KEY, plain)  # not served gray: not this host
    got = DiskCache(tmp_path, {"team": "x"}).load_config(KEY)
    assert got is not None and got.content == "m: 1\n"
    DiskCache(tmp_path, {"env": "canary"}).save_config(KEY, served)  # by labels: can't tell
    got = DiskCache(tmp_path).load_config(KEY)
    assert got is not None and got.content == "m: 1\n"
    assert DiskCache(tmp_path, {"env": "canary"}).load_config(KEY).content == "g: 1\n"  # type: ignore[union-attr]
    # review18 F4: a node that says whether this host is listed (gray_host) settles it
    for listed, expected in ((True, "g: 1\n"), (False, "m: 1\n")):
        told = dataclasses.replace(served, gray_host=listed)
        DiskCache(tmp_path, {"env": "canary"}).save_config(KEY, told)
        got = DiskCache(tmp_path).load_config(KEY)
        assert got is not None and got.content == expected and got.gray_host is listed


def test_a_gray_copy_without_the_main_version_is_not_served_to_another_client(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Saved from a node that did not send ``main``: a client the rule does not select
    has no copy (logged), rather than the gray content."""
    _, served = _gray_versions({"env": "canary"}, ())
    DiskCache(tmp_path, {"env": "canary"}).save_config(KEY, dataclasses.replace(served, main=None))
    with caplog.at_level(logging.WARNING, logger="meshreg.client"):
        assert DiskCache(tmp_path).load_config(KEY) is None
    assert "without the main one" in caplog.text
    assert DiskCache(tmp_path, {"env": "canary"}).load_config(KEY) is not None


# -- the archive ---------------------------------------------------------------------------------
ITEMS = [
    ArchiveItem("DEFAULT_GROUP", "app.yaml", "a: 1\n", "yaml", "the app", {"team": "x"}),
    ArchiveItem("billing", "rates.json", '{"eur": 1}', "json"),
]


def test_an_archive_reads_back_what_was_written() -> None:
    assert read_archive(io.BytesIO(archive_bytes(ITEMS))) == ITEMS


def test_a_hand_made_archive_without_metadata_imports_its_files_as_text() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("configs/g1/a.txt", "hello")
        zf.writestr("README", "ignored: not under configs/")
    (item,) = read_archive(io.BytesIO(buf.getvalue()))
    assert item == ArchiveItem("g1", "a.txt", "hello", "text")


def _zip(files: dict[str, bytes | str]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return io.BytesIO(buf.getvalue())


def _meta(*items: dict[str, Any], version: int = 1) -> str:
    return json.dumps({"format": "meshreg-configs", "version": version, "items": list(items)})


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"x": "y"}, None),  # nothing to import: an empty list, not an error
        ({METADATA: "not json"}, "is not JSON"),
        ({METADATA: _meta(version=9)}, "format version 9"),
        ({METADATA: _meta({"group": "g", "data_id": "a"})}, "'configs/g/a' is not in the archive"),
        ({"configs/g/a/b": "x"}, "expected configs/<group>/<data_id>"),
        ({"configs/g/bad name": "x"}, "letters, digits"),
        ({"configs/g/a": b"\xff"}, "not valid UTF-8"),
        (
            {METADATA: _meta({"group": "g", "data_id": "a", "type": "ini"}), "configs/g/a": "x"},
            "not a config type",
        ),  # fmt: skip
        (
            {
                METADATA: _meta(
                    {"group": "g", "data_id": "a", "file": "configs/g/a"},
                    {"group": "g", "data_id": "a", "file": "other"},
                ),
                "configs/g/a": "x",
                "other": "y",
            },
            "g/a twice",
        ),  # fmt: skip
    ],
)
def test_a_bad_archive_is_refused_whole_naming_the_file(
    files: dict[str, Any], message: str | None
) -> None:
    if message is None:
        assert read_archive(_zip(files)) == []
        return
    with pytest.raises(ArchiveError, match=message):
        read_archive(_zip(files))


def test_not_a_zip_is_refused_on_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_text("hello")
    result = invoke("import", str(path), "-s", "127.0.0.1:1")
    assert result.exit_code == 1 and "is not a zip archive" in result.output


class FakeClient:
    """The config calls export and import make, over a dict (``history``: the past versions
    of each data id, newest first).  ``rounds``: the calls of each ``_config_many``."""

    def __init__(self, namespace: str, configs: dict[tuple[str, str], ConfigInfo]) -> None:
        self.namespace = namespace
        self.configs = configs
        self.history: dict[tuple[str, str], list[ConfigInfo]] = {}
        self.published: list[tuple[str, str, int | None]] = []
        self.rounds: list[list[str]] = []
        self.floors = True  # honour ``revision_floor`` (False: a node older than it)
        self.floors_asked: list[tuple[str, str, str, int | None]] = []  # (op, group, id, floor)

    def _next(self, op: str, key: ConfigKey, current: ConfigInfo | None,
              f: dict[str, Any]) -> int:  # fmt: skip
        """The revision a write makes: as the node's store (core.py ``_commit_local``)."""
        floor = f.get("revision_floor")
        self.floors_asked.append((op, key.group, key.data_id, floor))
        base = (current.revision if current else 0) + 1
        return max(base, floor or 0) if self.floors else base

    def config_list(self, namespace: str, group: str | None = None, all_groups: bool = False,
                    deleted: bool = False, **kw: Any) -> list[ConfigInfo]:  # fmt: skip
        return [i for (g, _), i in sorted(self.configs.items())
                if (all_groups or g == group) and (deleted or not i.deleted)]  # fmt: skip

    def _config_delete(self, key: ConfigKey, f: dict[str, Any]) -> ConfigInfo:
        """As the store: NOT_FOUND where nothing live is held, unless ``revision_floor``
        is above what is held (an import keeps a tombstone's revision)."""
        current = self._cas(key, f)
        if current is None or current.deleted:
            held = current.revision if current is not None else 0
            if not self.floors or (f.get("revision_floor") or 0) <= held:
                raise NotFoundError(5, f"{key} does not exist")
            current = current or info(key.data_id, "", 0, key.group)
        revision = self._next("delete", key, current, f)
        return self._put(key, dataclasses.replace(current, revision=revision,
                                                  content="", gray=None, deleted=True,
                                                  change="delete"))  # fmt: skip

    def _config_many(self, calls: list[tuple[str, ConfigKey, dict[str, Any]]],
                     window: int = 64) -> list[Any]:  # fmt: skip
        self.rounds.append([op for op, _, _ in calls])
        out: list[Any] = []
        for op, key, f in calls:
            try:
                out.append(getattr(self, "_" + op)(key, f))
            except (ConflictError, NotFoundError, PermissionDeniedError) as exc:
                out.append(exc)
        return out

    def _config_history(self, key: ConfigKey, f: dict[str, Any]) -> Any:
        ident = (key.group, key.data_id)
        items = [self.configs[ident], *self.history.get(ident, [])][: f["page_size"]]
        return ConfigPage(tuple(items), None)

    def _cas(self, key: ConfigKey, f: dict[str, Any]) -> ConfigInfo | None:
        current = self.configs.get((key.group, key.data_id))
        if f.get("if_revision") is not None and f["if_revision"] != (
            current.revision if current and not current.deleted else 0
        ):
            raise ConflictError(11, f"{key} moved on")
        return current

    def _put(self, key: ConfigKey, new: ConfigInfo) -> ConfigInfo:
        ident = (key.group, key.data_id)
        if ident in self.configs:
            self.history.setdefault(ident, []).insert(0, self.configs[ident])
        self.configs[ident] = new
        return new

    def _config_publish(self, key: ConfigKey, f: dict[str, Any]) -> ConfigInfo:
        current = self._cas(key, f)
        self.published.append((key.group, key.data_id, f.get("if_revision")))
        gray = current.gray if current else None
        revision = self._next("publish", key, current, f)
        return self._put(key, info(key.data_id, f["content"], revision, key.group,
                                   type=f["type"], description=f.get("desc", ""),
                                   tags=f.get("tags") or {}, gray=gray))  # fmt: skip

    def _config_gray(self, key: ConfigKey, f: dict[str, Any]) -> ConfigInfo:
        g = GrayInfo(f["content"], f.get("type") or "", content_md5(f["content"]),
                     f.get("labels") or {}, tuple(f.get("clients") or ()))  # fmt: skip
        return self._derive("gray", key, f, gray=g)

    def _config_gray_drop(self, key: ConfigKey, f: dict[str, Any]) -> ConfigInfo:
        return self._derive("gray_drop", key, f, gray=None)

    def _config_promote(self, key: ConfigKey, f: dict[str, Any]) -> ConfigInfo:
        return self._derive("promote", key, f, gray=None)

    def _derive(self, op: str, key: ConfigKey, f: dict[str, Any], **changes: Any) -> ConfigInfo:
        """A gray step, as the store's (a new revision of the current version)."""
        current = self._cas(key, f)
        assert current is not None and (op == "gray" or current.gray is not None)
        g = changes["gray"]
        if g is not None and not g.type:
            changes["gray"] = dataclasses.replace(g, type=current.type)
        if op == "promote":
            old = current.gray
            changes.update(content=old.content, type=old.type, md5=old.md5)
        revision = self._next(op, key, current, f)
        return self._put(key, dataclasses.replace(current, change=op, revision=revision,
                                                  **changes))  # fmt: skip


def _states(client: FakeClient, ident: tuple[str, str]) -> list[tuple[Any, ...]]:
    """Oldest first: (revision, change, main content, gray content or None)."""
    versions = [client.configs[ident], *client.history.get(ident, [])]
    return [(v.revision, v.change, v.content, v.gray.content if v.gray else None)
            for v in reversed(versions)]  # fmt: skip


@pytest.mark.parametrize("keep", [None, 3, 2])
def test_import_history_replays_gray_steps_at_their_revisions(keep: int | None) -> None:
    """review33 F5: ``import --history`` skipped the gray steps of a data id's history and
    wrote its gray version after the current one, so a data id whose gray version was
    made before its last publishes ended one revision above the source's (5 for 4), and
    the copy's versions in between held no gray version where the source's did.  Every
    step now goes at its own revision (a publish, a gray write or drop, a promote), also
    when the history was pruned to its last versions (``keep``): the first replayed one,
    main and gray at once, as a publish one below and a gray write at its revision."""

    def gray(content: str) -> GrayInfo:
        return GrayInfo(content, "text", content_md5(content), {"env": "c"})

    steps = [  # (revision, change, main, gray)
        (1, "publish", "v1", None), (2, "gray", "v1", "g1"), (3, "publish", "v2", "g1"),
        (4, "publish", "v3", "g1"), (5, "gray_drop", "v3", None), (6, "gray", "v3", "g2"),
        (7, "promote", "g2", None), (8, "publish", "v4", None), (9, "gray", "v4", "g3"),
        (10, "publish", "v5", "g3"),
    ]  # fmt: skip
    versions = [info("app", main, r, "g", change=change, gray=gray(g) if g else None)
                for r, change, main, g in steps]  # fmt: skip
    kept = versions if keep is None else versions[-keep:]
    source = FakeClient("public", {("g", "app"): versions[-1]})
    source.history[("g", "app")] = list(reversed(kept[:-1]))
    buf = io.BytesIO()
    export_namespace(source, buf)  # type: ignore[arg-type]
    items = read_archive(io.BytesIO(buf.getvalue()), history=True)
    target = FakeClient("t", {})
    report = import_items(target, items, history=True)  # type: ignore[arg-type]
    assert report.failed == [] and report.below == [], report
    copy = _states(target, ("g", "app"))
    want = _states(source, ("g", "app"))
    if keep == 2:  # v4 at 8 (one below), its gray version at 9, then v5 at 10: the source's
        assert copy == [(8, "publish", "v4", None), *want]
    else:
        assert copy == want
    assert target.configs[("g", "app")].revision == 10


@pytest.mark.parametrize("last", ["promote", "same again", "rollback in force"])
def test_import_history_makes_the_current_version_at_its_revision(last: str) -> None:
    """review34 F1, F2: a current version that is a promote was replayed as a publish and
    a drop (one revision above the source's, with a state the source never had); one
    equal to the version before (a rollback to the version in force, the same file
    published again) was not written at all (the copy one revision below the source's,
    and a client that saw it there refused every read)."""

    def gray(content: str) -> GrayInfo:
        return GrayInfo(content, "text", content_md5(content), {"env": "c"})

    steps = [(1, "publish", "v1", None), (2, "gray", "v1", "g1")]
    steps.append({"promote": (3, "promote", "g1", None), "same again": (3, "publish", "v1", "g1"),
                  "rollback in force": (3, "rollback", "v1", "g1")}[last])  # fmt: skip
    versions = [info("app", main, r, "g", change=change, gray=gray(g) if g else None)
                for r, change, main, g in steps]  # fmt: skip
    source = FakeClient("public", {("g", "app"): versions[-1]})
    source.history[("g", "app")] = list(reversed(versions[:-1]))
    buf = io.BytesIO()
    export_namespace(source, buf)  # type: ignore[arg-type]
    target = FakeClient("t", {})
    report = import_items(target, read_archive(io.BytesIO(buf.getvalue()), history=True),
                          history=True)  # type: ignore[arg-type]  # fmt: skip
    assert report.failed == [] and report.below == [] and report.history == 2, report
    copy = _states(target, ("g", "app"))
    want = [(r, c if c != "rollback" else "publish", m, g) for r, c, m, g in steps]
    assert copy == want


def test_import_history_over_a_target_with_a_gray_version_drops_it() -> None:
    """review34 F3: ``--on-conflict overwrite --history`` left the target's own gray
    version in force although no archived version has one (without ``--history`` it is
    dropped): the replay started from "no gray version"."""
    source = FakeClient("public", {("g", "app"): info("app", "v2", 2, "g")})
    source.history[("g", "app")] = [info("app", "v1", 1, "g")]
    buf = io.BytesIO()
    export_namespace(source, buf)  # type: ignore[arg-type]
    theirs = GrayInfo("old canary", "text", content_md5("old canary"), {"env": "c"})
    target = FakeClient("t", {("g", "app"): info("app", "mine", 5, "g", gray=theirs)})
    report = import_items(target, read_archive(io.BytesIO(buf.getvalue()), history=True),
                          "overwrite", history=True)  # type: ignore[arg-type]  # fmt: skip
    assert report.failed == [] and report.overwritten == [("g", "app")], report
    now = target.configs[("g", "app")]
    assert (now.content, now.gray) == ("v2", None)
    assert [c for _, c, _, _ in _states(target, ("g", "app"))] == [
        "publish", "publish", "gray_drop", "publish"]  # fmt: skip


def test_export_then_import_into_another_namespace_keeps_content_type_and_metadata() -> None:
    source = FakeClient("public", {
        ("DEFAULT_GROUP", "app.yaml"): info("app.yaml", "a: 1\n", 7, type="yaml",
                                            description="the app", tags={"team": "x"}),
        ("billing", "rates.json"): info("rates.json", "{}", 2, "billing", type="json"),
    })  # fmt: skip
    buf = io.BytesIO()
    assert export_namespace(source, buf) == 2  # type: ignore[arg-type]
    meta = json.loads(zipfile.ZipFile(io.BytesIO(buf.getvalue())).read(METADATA))
    assert meta["namespace"] == "public" and meta["items"][0]["revision"] == 7
    items = read_archive(io.BytesIO(buf.getvalue()))
    target = FakeClient("staging", {})
    report = import_items(target, items)  # type: ignore[arg-type]
    assert sorted(report.created) == [("DEFAULT_GROUP", "app.yaml"), ("billing", "rates.json")]
    copied = target.configs[("DEFAULT_GROUP", "app.yaml")]
    assert (copied.content, copied.type, copied.description, copied.tags) == (
        "a: 1\n", "yaml", "the app", {"team": "x"})  # fmt: skip
    assert all(rev == 0 for _, _, rev in target.published)  # created: must not exist


def test_import_on_conflict_abort_writes_nothing_skip_skips_overwrite_compares() -> None:
    existing = {("DEFAULT_GROUP", "app.yaml"): info("app.yaml", "old", 3)}
    target = FakeClient("public", dict(existing))
    with pytest.raises(ConflictError, match=r"1 config\(s\) exist already \(DEFAULT_GROUP/app"):
        import_items(target, ITEMS, "abort")  # type: ignore[arg-type]
    assert target.published == []
    report = import_items(target, ITEMS, "skip")  # type: ignore[arg-type]
    assert report.skipped == [("DEFAULT_GROUP", "app.yaml")]
    assert report.created == [("billing", "rates.json")]
    target = FakeClient("public", dict(existing))
    report = import_items(target, ITEMS, "overwrite")  # type: ignore[arg-type]
    assert report.overwritten == [("DEFAULT_GROUP", "app.yaml")]
    assert ("DEFAULT_GROUP", "app.yaml", 3) in target.published  # CAS on what was read
    assert target.configs[("DEFAULT_GROUP", "app.yaml")].content == "a: 1\n"


def test_export_keeps_gray_and_history_and_import_writes_them_in_rounds() -> None:
    gray = GrayInfo("a: canary\n", "yaml", content_md5("a: canary\n"), {"env": "canary"},
                    ("10.0.0.9",))  # fmt: skip
    source = FakeClient("public", {
        ("DEFAULT_GROUP", "app.yaml"): info("app.yaml", "a: 2\n", 3, type="yaml", gray=gray,
                                            change="gray"),
        ("billing", "rates.json"): info("rates.json", "{}", 1, "billing", type="json"),
    })  # fmt: skip
    source.history[("DEFAULT_GROUP", "app.yaml")] = [
        info("app.yaml", "a: 2\n", 2, type="yaml"),
        info("app.yaml", "a: 1\n", 1, type="yaml"),
    ]
    buf = io.BytesIO()
    assert export_namespace(source, buf, history=1) == 2  # type: ignore[arg-type]
    assert source.rounds == [["config_history", "config_history"]]  # one round, no get each
    zf = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    meta = json.loads(zf.read(METADATA))
    assert meta["version"] == 3
    app = next(i for i in meta["items"] if i["data_id"] == "app.yaml")
    assert app["gray"]["labels"] == {"env": "canary"} and app["gray"]["clients"] == ["10.0.0.9"]
    assert zf.read(app["gray"]["file"]).decode() == "a: canary\n"
    assert [(h["revision"], h["change"]) for h in app["history"]] == [(3, "gray"), (2, "publish")]
    assert zf.read(app["history"][1]["file"]).decode() == "a: 2\n"
    assert "gray" in app["history"][0] and "gray" not in app["history"][1]
    items = read_archive(io.BytesIO(buf.getvalue()))
    by_id = {i.data_id: i for i in items}
    assert by_id["app.yaml"].gray == ArchiveGray("a: canary\n", "yaml", {"env": "canary"},
                                                 ("10.0.0.9",))  # fmt: skip
    assert by_id["app.yaml"].history == 2 and by_id["rates.json"].gray is None
    # import: the main versions in one round, then the gray versions (CAS on their result)
    target = FakeClient("staging", {
        ("billing", "rates.json"): info("rates.json", "old", 4, "billing", type="json",
                                        gray=GrayInfo("g", "json", content_md5("g"), {"a": "b"}))
    })  # fmt: skip
    report = import_items(target, items, "overwrite")  # type: ignore[arg-type]
    assert target.rounds == [["config_publish", "config_publish"],
                             ["config_gray", "config_gray_drop"]]  # fmt: skip
    assert report.created == [("DEFAULT_GROUP", "app.yaml")] and report.gray == [
        ("DEFAULT_GROUP", "app.yaml")]  # fmt: skip
    assert report.overwritten == [("billing", "rates.json")] and report.failed == []
    copied = target.configs[("DEFAULT_GROUP", "app.yaml")]
    # the main write at 2 (revision_floor: one below the source's 3), its gray write at 3:
    # the source's revision, as it was there (a client that saw 3 is not left behind)
    assert (copied.content, copied.revision) == ("a: 2\n", 3)
    assert ("publish", "DEFAULT_GROUP", "app.yaml", 2) in target.floors_asked
    assert copied.gray is not None and (copied.gray.content, copied.gray.labels) == (
        "a: canary\n", {"env": "canary"})  # fmt: skip
    assert target.configs[("billing", "rates.json")].gray is None  # as archived


def test_a_version_1_archive_is_still_read_and_a_bad_gray_rule_refused_whole() -> None:
    v1 = {"format": "meshreg-configs", "version": 1, "items": [
        {"group": "g", "data_id": "a", "file": "configs/g/a", "type": "text"}]}  # fmt: skip
    (item,) = read_archive(_zip({METADATA: json.dumps(v1), "configs/g/a": "x"}))
    assert (item.content, item.gray, item.history) == ("x", None, 0)
    bad = {**v1, "version": 2}
    bad["items"] = [{**v1["items"][0], "gray": {"file": "gray/g/a", "type": "text"}}]
    with pytest.raises(ArchiveError, match="selector"):
        read_archive(_zip({METADATA: json.dumps(bad), "configs/g/a": "x",
                                      "gray/g/a": "y"}))  # fmt: skip
    bad["items"] = [{**v1["items"][0], "history": [{"revision": 1, "change": "publish",
                                                    "file": "history/g/a/0"}]}]  # fmt: skip
    with pytest.raises(ArchiveError, match="history/g/a/0.*not in the archive"):
        read_archive(_zip({METADATA: json.dumps(bad), "configs/g/a": "x"}))
    bad["items"][0]["history"] = [{"revision": 0, "change": "publish", "file": "configs/g/a"}]
    with pytest.raises(ArchiveError, match="'revision' must be an integer"):
        read_archive(_zip({METADATA: json.dumps(bad), "configs/g/a": "x"}))
    with pytest.raises(ArchiveError, match="this meshreg reads 1, 2, 3"):
        read_archive(_zip({METADATA: json.dumps({**v1, "version": 4}),
                                      "configs/g/a": "x"}))  # fmt: skip


def test_content_above_the_client_cap_is_refused_before_sending_naming_the_knob(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.txt"
    path.write_text("x" * (1024 * 1024 + 1))
    port = free_port_pair()  # nothing listens: refused before anything is sent
    result = invoke("publish", "big", "--file", str(path), "-s", f"127.0.0.1:{port}")
    assert result.exit_code == 1
    assert "1048577 bytes" in result.output and "--max-bytes" in result.output
    result = invoke("publish", "big", "--file", str(path), "-s", f"127.0.0.1:{port}",
                    "--max-bytes", "2000000", "--timeout", "0.3")  # fmt: skip
    # past the cap this time: sent, and refused by the address where nothing listens
    assert result.exit_code == 1 and "refused the connection" in result.output
    assert "1048577 bytes" not in result.output


def test_every_client_write_gets_its_own_request_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """One fresh request id per logical write (the session re-sends it unchanged)."""
    from meshreg import Client
    from meshreg.configcenter.model import check_request_id

    sent: list[tuple[str, dict[str, object]]] = []
    c = Client([f"127.0.0.1:{free_port_pair()}"], timeout=0.3)
    try:
        monkeypatch.setattr(c, "_config_call", lambda op, key, fields: sent.append((op, fields)))
        c.config_publish("a.txt", "x", if_revision=0)
        c.config_publish("a.txt", "x")
        c.config_delete("a.txt")
        c.config_rollback("a.txt", 1)
        c.config_gray("a.txt", "g", labels={"env": "c"})
        c.config_promote("a.txt")
        c.config_gray_drop("a.txt")
    finally:
        c.close(timeout=0.2)
    ids = [str(fields["request_id"]) for _, fields in sent]
    assert len(sent) == 7 and len(set(ids)) == 7
    assert all(check_request_id(i) == i for i in ids)


def test_a_caller_chosen_request_id_is_sent_and_a_bad_one_refused_before_sending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from meshreg import Client
    from meshreg.errors import InvalidArgumentError

    rid = "my-write-0001:retry_ok"
    sent: list[tuple[str, dict[str, object]]] = []
    c = Client([f"127.0.0.1:{free_port_pair()}"], timeout=0.3)
    try:
        monkeypatch.setattr(c, "_config_call", lambda op, key, fields: sent.append((op, fields)))
        c.config_publish("a.txt", "x", request_id=rid)
        c.config_delete("a.txt", request_id=rid)
        c.config_rollback("a.txt", 1, request_id=rid)
        c.config_gray("a.txt", "g", labels={"env": "c"}, request_id=rid)
        c.config_promote("a.txt", request_id=rid)
        c.config_gray_drop("a.txt", request_id=rid)
        assert [f["request_id"] for _, f in sent] == [rid] * 6
        for bad in ("short", "0123456789abcdef/", "x" * 65):
            with pytest.raises(InvalidArgumentError, match="request_id"):
                c.config_publish("a.txt", "x", request_id=bad)
        assert len(sent) == 6  # nothing sent
    finally:
        c.close(timeout=0.2)


def test_a_write_no_node_answers_names_the_request_id_to_resend_with() -> None:
    """A write that reached something that never answers (a ROUTER that reads and says
    nothing: a stopped or wedged node) may have been applied: the request id to re-send
    with is named.  One that never left (nothing listens: no connection completed its
    handshake) was not applied, and says so (review19 F8)."""
    import zmq

    from meshreg import Client, OutcomeUnknownError, ServerUnreachableError

    rid = "0123456789abcdef0123456789abcdef"
    port = free_port_pair()
    silent = zmq.Context.instance().socket(zmq.ROUTER)
    silent.setsockopt(zmq.LINGER, 0)
    silent.bind(f"tcp://127.0.0.1:{port}")
    try:
        result = invoke("publish", "x", "--content", "a", "--type", "text", "--request-id",
                        rid, "-s", f"127.0.0.1:{port}", "--timeout", "0.5")  # fmt: skip
        assert result.exit_code == 1, result.output
        assert "outcome of this config_publish is unknown" in result.output
        assert f"--request-id {rid}" in result.output
        c = Client([f"127.0.0.1:{port}"], timeout=0.5)
        try:
            with pytest.raises(OutcomeUnknownError) as info:
                c.config_delete("x")
            assert len(info.value.request_id) == 32 and info.value.request_id in str(info.value)
            assert "public/DEFAULT_GROUP/x" in str(info.value)
        finally:
            c.close(timeout=0.2)
    finally:
        silent.close()
    nobody = free_port_pair()
    result = invoke("publish", "x", "--content", "a", "-s", f"127.0.0.1:{nobody}",
                    "--timeout", "0.3")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "never left this client (not applied)" in result.output, result.output
    assert "outcome" not in result.output
    c = Client([f"127.0.0.1:{nobody}"], timeout=0.3)
    try:
        with pytest.raises(ServerUnreachableError) as unsent:
            c.config_delete("x")
        assert unsent.value.unsent and not isinstance(unsent.value, OutcomeUnknownError)
    finally:
        c.close(timeout=0.2)


def test_tombstones_are_exported_and_import_replays_the_history_oldest_first() -> None:
    """A deleted data id travels as a tombstone (no content file) and deletes the data id
    where it exists (overwrite); ``history=True`` replays the past versions as revisions,
    oldest first (a delete in the middle too), one round per step, then the current
    version: here its main state is the last replayed one's, so only its gray version is
    written."""
    source = FakeClient("public", {
        ("g", "app"): info("app", "v4", 6, "g", change="gray", gray=GrayInfo(
            "canary", "text", content_md5("canary"), {"env": "c"})),
        ("g", "gone"): info("gone", "", 3, "g", deleted=True, change="delete"),
    })  # fmt: skip
    source.history[("g", "app")] = [
        info("app", "v4", 5, "g"), info("app", "v3", 4, "g"),
        info("app", "", 3, "g", deleted=True, change="delete"),
        info("app", "v1", 2, "g", type="json"), info("app", "v1", 1, "g"),
    ]  # fmt: skip
    source.history[("g", "gone")] = [info("gone", "x2", 2, "g"), info("gone", "x1", 1, "g")]
    buf = io.BytesIO()
    assert export_namespace(source, buf) == 2  # type: ignore[arg-type]
    zf = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    meta = json.loads(zf.read(METADATA))
    gone = next(i for i in meta["items"] if i["data_id"] == "gone")
    assert gone["deleted"] is True and "file" not in gone and "configs/g/gone" not in zf.namelist()
    # without the history: the tombstone deletes where the data id exists; absent: nothing
    items = read_archive(io.BytesIO(buf.getvalue()))
    assert {i.data_id: i.deleted for i in items} == {"app": False, "gone": True}
    assert all(i.past == () for i in items)  # contents of the history not read
    target = FakeClient("t", {("g", "gone"): info("gone", "here", 9, "g")})
    report = import_items(target, items, "overwrite")  # type: ignore[arg-type]
    assert report.deleted == [("g", "gone")] and target.configs[("g", "gone")].deleted
    assert report.created == [("g", "app")] and report.history == 0
    empty = FakeClient("t", {})
    assert import_items(empty, items).absent == [("g", "gone")]  # type: ignore[arg-type]
    kept = empty.configs[("g", "gone")]  # nothing to read, but its revision is kept (a
    assert (kept.deleted, kept.revision) == (True, 3)  # later create goes on above it)
    # with the history: replayed oldest first, then the current and its gray version
    items = read_archive(io.BytesIO(buf.getvalue()), history=True)
    target = FakeClient("t", {})
    report = import_items(target, items, history=True)  # type: ignore[arg-type]
    assert report.failed == [] and report.history == 7 and report.created == [("g", "app")]
    assert report.deleted == [("g", "gone")]  # its history (x1, x2), then its tombstone
    app = [target.configs[("g", "app")], *target.history[("g", "app")]]
    assert [(v.revision, v.content, v.type, v.deleted, v.change) for v in reversed(app)] == [
        (1, "v1", "text", False, "publish"), (2, "v1", "json", False, "publish"),
        (3, "", "json", True, "delete"), (4, "v3", "text", False, "publish"),
        (5, "v4", "text", False, "publish"), (6, "v4", "text", False, "gray"),
    ]  # fmt: skip
    gone_now = [target.configs[("g", "gone")], *target.history[("g", "gone")]]
    assert [(v.content, v.deleted) for v in reversed(gone_now)] == [
        ("x1", False), ("x2", False), ("", True)]  # fmt: skip
    # first: may this key delete in group g? (a delete no data id matches: nothing written)
    assert target.rounds[0] == ["config_delete"]
    assert target.rounds[1] == ["config_publish", "config_publish"]  # step 1 of both at once
    # a key that may not delete there: the data id deleted at the source is not replayed
    denied = FakeClient("t", {})
    refuse = PermissionDeniedError(7, "config_delete t/g/gone: needs admin")

    def no_delete(key: ConfigKey, f: dict[str, Any]) -> ConfigInfo:
        raise refuse

    denied._config_delete = no_delete  # type: ignore[method-assign]
    report = import_items(denied, items, history=True)  # type: ignore[arg-type]
    assert [ident for ident, _ in report.failed] == [("g", "app"), ("g", "gone")]
    assert "may not delete in group 'g'" in report.failed[0][1]
    assert denied.configs == {} and [r for r in denied.rounds if r] == [["config_delete"]]


def test_import_keeps_the_archived_revisions_and_they_only_grow() -> None:
    """issue 12 / review11 F-revreset: a cluster rebuilt from an export went back to
    revision 1, so running clients (their revision floor at the source's) neither read
    nor heard those data ids.  Every write now carries the archived revision as
    ``revision_floor``: absent here, the data id lands at it (its replayed history too);
    overwritten, at max(its revision + 1, the archived one); a hand-made archive (no
    revision): the next one, as before; a node that ignores the field: reported."""
    source = FakeClient("public", {
        ("g", "app"): info("app", "v9", 9, "g"),
        ("g", "low"): info("low", "l2", 2, "g"),
        ("g", "gone"): info("gone", "", 12, "g", deleted=True, change="delete"),
    })  # fmt: skip
    source.history[("g", "app")] = [info("app", "v8", 8, "g"), info("app", "v5", 5, "g")]
    source.history[("g", "gone")] = [info("gone", "x11", 11, "g")]
    buf = io.BytesIO()
    export_namespace(source, buf)  # type: ignore[arg-type]
    items = read_archive(io.BytesIO(buf.getvalue()))
    assert {i.data_id: i.revision for i in items} == {"app": 9, "low": 2, "gone": 12}
    fresh = FakeClient("public", {})  # the rebuilt cluster: empty data directories
    report = import_items(fresh, items)  # type: ignore[arg-type]
    assert {k[1]: (v.revision, v.deleted) for k, v in fresh.configs.items()} == {
        "app": (9, False), "low": (2, False), "gone": (12, True)}  # fmt: skip
    assert report.below == [] and report.absent == [("g", "gone")]  # (its tombstone kept)
    with pytest.raises(ConflictError):  # created again: above the source's delete
        fresh._config_publish(ConfigKey("public", "g", "gone"), {"content": "x", "type": "text",
                                                                 "if_revision": 1})  # fmt: skip
    again = fresh._config_publish(ConfigKey("public", "g", "gone"),
                                  {"content": "x", "type": "text", "if_revision": 0})  # fmt: skip
    assert again.revision == 13
    # a target that holds its tombstone as far already: NOT_FOUND, still absent, no failure
    far = FakeClient("public", {("g", "gone"): info("gone", "", 20, "g", deleted=True)})
    report = import_items(far, [i for i in items if i.data_id == "gone"])  # type: ignore[arg-type]
    assert report.absent == [("g", "gone")] and report.failed == []
    assert far.configs[("g", "gone")].revision == 20
    # with its history: each replayed version at its own archived revision
    hist = FakeClient("public", {})
    items_h = read_archive(io.BytesIO(buf.getvalue()), history=True)
    report = import_items(hist, items_h, history=True)  # type: ignore[arg-type]
    app = [hist.configs[("g", "app")], *hist.history[("g", "app")]]
    assert [(v.revision, v.content) for v in reversed(app)] == [(5, "v5"), (8, "v8"), (9, "v9")]
    gone = [hist.configs[("g", "gone")], *hist.history[("g", "gone")]]
    assert [(v.revision, v.deleted) for v in reversed(gone)] == [(11, False), (12, True)]
    # overwrite: the archived revision if higher, else the next one; never down
    target = FakeClient("public", {("g", "app"): info("app", "here", 3, "g"),
                                   ("g", "low"): info("low", "here", 6, "g")})  # fmt: skip
    report = import_items(target, items, "overwrite")  # type: ignore[arg-type]
    assert target.configs[("g", "app")].revision == 9  # max(3 + 1, 9)
    assert target.configs[("g", "low")].revision == 7  # max(6 + 1, 2)
    assert sorted(report.overwritten) == [("g", "app"), ("g", "low")]
    # a hand-made archive carries no revision: no floor, the next revision as before
    (plain,) = read_archive(io.BytesIO(archive_bytes([ArchiveItem("g", "hand", "h")])))
    assert plain.revision == 0
    hand = FakeClient("public", {})
    import_items(hand, [plain])  # type: ignore[arg-type]
    assert hand.configs[("g", "hand")].revision == 1
    assert hand.floors_asked == [("publish", "g", "hand", None)]
    # a node that ignores revision_floor (older than this client): said in the report
    old = FakeClient("public", {})
    old.floors = False
    report = import_items(old, items)  # type: ignore[arg-type]
    assert sorted(report.below) == [("g", "app"), ("g", "low")]
    assert report.to_json()["below_archived_revision"] == ["g/app", "g/low"]


@pytest.mark.parametrize("revision", [0, -3, 2**62 + 1, "7", 1.5, True])
def test_an_archived_revision_out_of_range_refuses_the_archive(revision: object) -> None:
    meta = {"format": "meshreg-configs", "version": 3, "items": [
        {"group": "g", "data_id": "a", "file": "configs/g/a", "type": "text",
         "revision": revision}]}  # fmt: skip
    with pytest.raises(ArchiveError, match="'revision' must be an integer in 1.."):
        read_archive(_zip({METADATA: json.dumps(meta), "configs/g/a": "x"}))


class _Lister:
    """What ``config list`` asks the client (its ``_client`` replaced)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None, bool]] = []

    def __enter__(self) -> _Lister:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def config_list(self, pattern: str = "*", group: str | None = None,
                    all_groups: bool = False) -> list[ConfigInfo]:  # fmt: skip
        self.asked.append((pattern, group, all_groups))
        return []


def test_config_list_lists_every_group_unless_g_and_its_help_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """review11: the help showed ``-g [default: DEFAULT_GROUP]`` while the command lists
    every group without -g; help and behaviour now agree (export's -g too)."""
    for command in ("list", "export"):
        text = invoke(command, "--help").output
        line = next(x for x in text.splitlines() if "-g, --group" in x)
        assert "[default: every group]" in line and "DEFAULT_GROUP" not in line, line
    fake = _Lister()
    monkeypatch.setattr("meshreg.cli_config._client", lambda *a, **kw: fake)
    assert invoke("list").exit_code == 0
    assert invoke("list", "-g", "DEFAULT_GROUP").exit_code == 0
    assert invoke("list", "-g", "billing", "--pattern", "a*").exit_code == 0
    assert fake.asked == [
        ("*", None, True),
        ("*", "DEFAULT_GROUP", False),
        ("a*", "billing", False),
    ]


class _NoHistory(_Lister):
    def config_history(self, data_id: str, limit: int = 100) -> list[ConfigInfo]:
        return []


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_config_history_of_an_unknown_data_id_fails_naming_it_with_or_without_json(
    monkeypatch: pytest.MonkeyPatch, extra: list[str]
) -> None:
    """review11: the text form said "no history" and exited 1, --json printed ``[]`` and
    exited 0.  Both now fail as ``config get`` of a missing data id does."""
    monkeypatch.setattr("meshreg.cli_config._client", lambda *a, **kw: _NoHistory())
    result = invoke("history", "nosuch", *extra)
    assert result.exit_code == 1, result.output
    assert "no history of 'nosuch' in namespace 'public', group 'DEFAULT_GROUP'" in result.output
    assert "[]" not in result.output


def test_client_config_list_lists_every_group_by_default_as_the_cli_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """review11: ``Client.config_list()`` listed the client's group while ``meshreg config
    list`` (and Nacos's config list with an empty group) lists every group.  Now both list
    every group unless a group is named; ``all_groups=False`` keeps the old call's meaning;
    a key refused every group is told to name one."""
    from meshreg import Client
    from meshreg.errors import ConfigError, PermissionDeniedError

    asked: list[Any] = []

    def fake_call(self: Any, op: str, key: Any, fields: dict[str, Any]) -> ConfigPage:
        asked.append(fields["group"])
        if fields["group"] is None and fields["namespace"] == "locked":
            raise PermissionDeniedError(7, "client 'app' may not list the configs of ...",
                                        "127.0.0.1:1")  # fmt: skip
        return ConfigPage((), None)

    monkeypatch.setattr(Client, "_config_call", fake_call)
    c = Client([f"127.0.0.1:{free_port_pair()}"], group="mine", timeout=0.3)
    try:
        c.config_list()
        c.config_list(group="billing")
        c.config_list(all_groups=True)
        c.config_list(all_groups=False)  # the client's group, as a bare call listed before
        assert asked == [None, "billing", None, "mine"]
        with pytest.raises(ConfigError, match="contradict"):
            c.config_list(group="billing", all_groups=True)
        with pytest.raises(PermissionDeniedError, match=r"give group=\.\.\. for one \(CLI: -g"):
            c.config_list(namespace="locked")
    finally:
        c.close(timeout=0.2)


class CliFakeClient(FakeClient):
    """A fake client the CLI opens as a context manager (``_client`` patched to it)."""

    def __enter__(self) -> CliFakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_cli_import_warns_about_configs_written_below_their_archived_revision(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A node older than ``revision_floor`` ignores it: the import says which data ids a
    running client that saw the source's revisions will not see."""

    target = CliFakeClient("public", {})
    target.floors = False
    monkeypatch.setattr("meshreg.cli_config._client", lambda *a, **kw: target)
    path = tmp_path / "a.zip"
    source = FakeClient("public", {("g", "app"): info("app", "v7", 7, "g")})
    with path.open("wb") as out:
        export_namespace(source, out)  # type: ignore[arg-type]
    result = invoke("import", str(path))
    assert result.exit_code == 0, result.output
    assert "1 config(s) written below their archived revision (g/app)" in result.stderr
    assert target.configs[("g", "app")].revision == 1
    target.floors = True
    target.configs.clear()
    result = invoke("import", str(path))
    assert result.exit_code == 0 and "below" not in result.stderr, result.output
    assert target.configs[("g", "app")].revision == 7


def test_names_too_long_for_a_file_name_are_cached_under_a_cut_name_and_a_hash(
    tmp_path: Path,
) -> None:
    """review17 F10: names are up to 256 characters, file names up to 255 bytes:
    ``<name>.json`` failed (ENAMETOOLONG) for names of 251+ characters, and such a
    consumer had no disk copy in an outage.  Two long names that share their first 200
    characters get two files."""
    from meshreg.model import Instance, ServiceKey

    cache = DiskCache(tmp_path)
    long_a, long_b = "s" * 255 + "a", "s" * 255 + "b"
    for name in (long_a, long_b):
        key = ServiceKey("public", "DEFAULT_GROUP", name)
        cache.save(key, [Instance("10.0.0.1", 80 if name == long_a else 81)])
        assert len(cache.path(key).name.encode()) <= 255
        loaded = cache.load(key)
        assert loaded is not None and loaded[0][0].port == (80 if name == long_a else 81)
    assert cache.path(ServiceKey("public", "g", "s" * 250)).name == "s" * 250 + ".json"
    ckey = ConfigKey("public", "DEFAULT_GROUP", "d" * 256)
    cache.save_config(ckey, info(ckey.data_id, "a: 1\n", 2))
    copy = cache.load_config(ckey)
    assert copy is not None and copy.content == "a: 1\n"


def test_an_import_with_failures_says_how_to_finish_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review19 F7: after a majority loss each failed item's advice names a request id the
    user never sees; the summary says what to run instead."""
    from click.testing import CliRunner

    import meshreg.client.config_archive as archive
    from meshreg.cli import main

    report = archive.ImportReport(created=[("G", "a")])
    report.failed.append((("G", "b"), "UNAVAILABLE: this attempt wrote nothing; ..."))
    report.fail(("G", "c"), "G/c: no answer", OutcomeUnknownError("no answer"))
    monkeypatch.setattr(archive, "read_archive", lambda *a, **k: [])
    monkeypatch.setattr(archive, "import_items", lambda *a, **k: report)
    zip_path = tmp_path / "x.zip"
    zip_path.write_bytes(b"")
    out = CliRunner().invoke(main, ["config", "import", str(zip_path), "-s", "127.0.0.1:1"])
    assert out.exit_code == 1, out.output
    assert "run the same import with --on-conflict skip" in out.output, out.output
    # review57: a write without an answer is not said "not imported" (it may be written)
    assert "  failed G/b: UNAVAILABLE" in out.output and "  outcome unknown G/c: " in out.output
    assert "1 config(s) not imported and 1 whose last write got no answer" in out.output


def test_history_marks_the_version_that_lost_its_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    """review19 F5: two versions of one revision (two owners for a moment): the node lists
    the winner first; the other was never in effect and is marked so."""
    from meshreg.client.config_api import ConfigMixin

    items = [info("app.yaml", "b", 7), info("app.yaml", "a", 7), info("app.yaml", "x", 6)]
    monkeypatch.setattr(ConfigMixin, "config_history", lambda self, *a, **k: items)
    out = CliRunner().invoke(main, ["config", "history", "app.yaml", "-s", "127.0.0.1:1"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert ["lost to the version above" in x for x in lines] == [False, True, False], lines
    out = CliRunner().invoke(main, ["config", "history", "app.yaml", "--json", "-s",
                                    "127.0.0.1:1"])  # fmt: skip
    assert [x.get("superseded", False) for x in json.loads(out.output)] == [False, True, False]


class UnansweredClient(FakeClient):
    """A write of ``lost`` is applied and its answer lost (a node killed after it wrote);
    one of ``refused`` is refused with nothing written."""

    lost, refused = ("billing", "rates.json"), ("DEFAULT_GROUP", "app.yaml")

    def _config_many(self, calls: list[tuple[str, ConfigKey, dict[str, Any]]],
                     window: int = 64) -> list[Any]:  # fmt: skip
        out = super()._config_many(calls, window)
        for i, (op, key, _) in enumerate(calls):
            if (key.group, key.data_id) == self.lost and op == "config_publish":
                out[i] = OutcomeUnknownError(f"{key}: no answer; it may have been applied")
            elif (key.group, key.data_id) == self.refused and op == "config_publish":
                out[i] = ServerError(8, f"{key}: nothing was written", unwritten=True)
        return out


def test_an_import_tells_the_writes_without_an_answer_from_those_not_written() -> None:
    """review57: an import during a node kill reported every failed id "not imported",
    some of which were written (their writes' outcome unknown)."""
    report = import_items(UnansweredClient("public", {}), ITEMS)  # type: ignore[arg-type]
    assert sorted(ident for ident, _ in report.failed) == sorted(
        [UnansweredClient.lost, UnansweredClient.refused])  # fmt: skip
    assert report.unknown == [UnansweredClient.lost]
    failed = {f["config"]: f["outcome_unknown"] for f in report.to_json()["failed"]}
    assert failed == {"billing/rates.json": True, "DEFAULT_GROUP/app.yaml": False}


def test_cli_import_with_a_group_imports_that_group_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """review of 2026-12-07: ``config import -g G2`` was accepted and ignored (every group
    of the archive imported).  With -g, that group only; a group the archive lacks is an
    error naming the archive's groups; without -g, every group, as before."""

    target = CliFakeClient("public", {})
    monkeypatch.setattr("meshreg.cli_config._client", lambda *a, **kw: target)
    path = tmp_path / "a.zip"
    source = FakeClient("public", {(g, "x.txt"): info("x.txt", g, 1, g) for g in ("G1", "G2")})
    with path.open("wb") as out:
        export_namespace(source, out)  # type: ignore[arg-type]
    result = invoke("import", str(path), "-g", "G2")
    assert result.exit_code == 0, result.output
    assert sorted(target.configs) == [("G2", "x.txt")]
    result = invoke("import", str(path), "-g", "G9")
    assert result.exit_code != 0 and "no data id of group 'G9'" in result.stderr
    assert "'G1', 'G2'" in result.stderr
    target.configs.clear()
    assert invoke("import", str(path)).exit_code == 0
    assert sorted(target.configs) == [("G1", "x.txt"), ("G2", "x.txt")]


def test_a_lone_surrogate_is_refused_before_sending_naming_the_field() -> None:
    """review of 2026-12-07: the client said only "'utf-8' codec can't encode character
    '\\udcff'"; the node's own errors name the field."""
    from meshreg.client.config_api import ConfigMixin
    from meshreg.errors import InvalidArgumentError

    fields = {"namespace": "public", "group": "DEFAULT_GROUP", "data_id": "x",
              "content": "a\udcffb"}  # fmt: skip
    with pytest.raises(InvalidArgumentError, match=r"field 'content' holds a lone surrogate"):
        ConfigMixin._config_check("config_publish", fields)


def test_cli_history_marks_a_version_no_majority_acknowledged_yet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A writer cut off from its peers holds its "outcome unknown" version unshown
    (docs/CONFIG.md); history listed it as if it were in effect.  The node marks it
    ``pending``; the CLI says so, in text and in ``--json``, and still marks a merge loser
    as lost."""

    class Client(CliFakeClient):
        def config_history(self, data_id: str, limit: int = 20, **kw: Any) -> list[ConfigInfo]:
            ident = ("DEFAULT_GROUP", data_id)
            return [self.configs[ident], *self.history[ident]]

    c = Client("public", {("DEFAULT_GROUP", "app"): info("app", "v3", 3, pending=True)})
    older = [info("app", "v2", 2), info("app", "w2", 2), info("app", "v1")]
    c.history[("DEFAULT_GROUP", "app")] = older
    monkeypatch.setattr("meshreg.cli_config._client", lambda *a, **kw: c)
    result = invoke("history", "app")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("rev 3") and "pending: no majority has acknowledged it" in lines[0]
    assert "pending" not in lines[1] and "lost" not in lines[1]
    assert "lost to the version above" in lines[2] and "pending" not in lines[2]
    result = invoke("history", "app", "--json")
    shown = json.loads(result.output)
    assert [x.get("pending", False) for x in shown] == [True, False, False, False]
    assert [x.get("superseded", False) for x in shown] == [False, False, True, False]
