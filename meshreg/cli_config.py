"""``meshreg config ...``: the configuration center's commands (docs/CONFIG.md, "Client and
CLI"), thin click commands over the client's config methods (client/config_api.py)."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from meshreg.cli import (
    _client,
    _fail,
    _kept_or_raise,
    _safe,
    _wait_for_signal,
    _warnings_to_stderr,
    client_options,
    config_write_timeout,
    key_option,
    minority_seen,
    namespace_option,
    security_options,
    server_key_option,
    server_option,
    timeout_option,
)
from meshreg.client.defaults import DEFAULT_EXPORT_HISTORY, MAX_EXPORT_HISTORY, ON_CONFLICT
from meshreg.configcenter.model import (
    CONFIG_TYPES,
    DEFAULT_MAX_CONTENT_BYTES,
    HARD_MAX_CONTENT_BYTES,
    ConfigRejected,
    check_request_id,
    content_md5,
)
from meshreg.errors import MeshregError
from meshreg.model import DEFAULT_GROUP, DEFAULT_NAMESPACE

if TYPE_CHECKING:  # annotations only: the client is imported by the command that runs
    from meshreg.client.configs import ConfigInfo

# A file's extension -> its config type, when --type is not given.
TYPE_BY_SUFFIX = {
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".properties": "properties",
    ".toml": "toml",
    ".xml": "xml",
}

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
max_bytes_option = click.option(
    "--max-bytes",
    type=click.IntRange(1, HARD_MAX_CONTENT_BYTES),
    default=DEFAULT_MAX_CONTENT_BYTES,
    envvar="MESHREG_CONFIG_MAX_BYTES",
    show_default=True,
    help="Largest content sent (the nodes' [config] max_content_bytes) "
    "(env MESHREG_CONFIG_MAX_BYTES).",
)
if_revision_option = click.option(
    "--if-revision",
    type=click.IntRange(0),
    default=None,
    help="Only if the data id is at this revision (0: only if it does not exist).",
)
# rollback, gray, promote, gray-drop: on a data id that exists ("0: only if it does not
# exist" meant nothing there: review of 2026-12-07)
if_at_revision_option = click.option(
    "--if-revision",
    type=click.IntRange(0),
    default=None,
    help="Only if the data id is at this revision now (compare-and-set); else CONFLICT, "
    "naming the current one.",
)


def _request_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--request-id``: checked as the node checks it (a usage error, nothing sent)."""
    if value is None:
        return None
    try:
        return check_request_id(value)
    except ConfigRejected as exc:
        raise click.BadParameter(exc.message, param_hint="--request-id") from None


request_id_option = click.option(
    "--request-id",
    default=None,
    callback=_request_id,
    help="This write's id (16..64 of 0-9A-Za-z_.:-; default: a random one). Re-send a write "
    "whose outcome was unknown with the id its error named: it is applied at most once.",
)


def _content(file: str | None, content: str | None) -> tuple[str, str | None]:
    """(content, type guessed from the file's extension) of --file F / --content S."""
    if (file is None) == (content is None):
        raise click.UsageError("give exactly one of --file F or --content S")
    if content is not None:
        return content, None
    assert file is not None
    try:
        if file == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(file, "rb") as fh:
                raw = fh.read()
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {file}: {exc.strerror}", param_hint="--file"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.BadParameter(
            f"{file} is not UTF-8 text (byte {exc.start}); configs are text: encode binary data "
            "(e.g. base64) first",
            param_hint="--file",
        ) from None
    return text, TYPE_BY_SUFFIX.get(os.path.splitext(file)[1].lower())


def _pairs(items: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=option)
        out[k] = v
    return out


def _written(verb: str, info: ConfigInfo, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(info.to_json(), sort_keys=True))
        return
    gray = " (gray version kept)" if info.gray is not None and verb != "gray" else ""
    md5 = f" (md5 {info.md5})"
    if verb == "gray" and info.gray is not None:  # what was just written is the gray one
        md5 = f" (gray md5 {info.gray.md5}, main md5 {info.md5})"
    if info.deleted:  # a tombstone has no content (review45 F10: "md5" of "" shown)
        md5 = gray = ""
    click.echo(
        f"{verb} {_safe(info.namespace)}/{_safe(info.group)}/{_safe(info.data_id)}: revision "
        f"{info.revision}{md5}{gray}"
    )


def every_group_options(command: Any) -> Any:
    """``client_options`` for the commands that cover every group unless ``-g`` is given
    (list, export): their ``-g`` has no default, and its help says so (it showed
    ``[default: DEFAULT_GROUP]``, which these commands never applied: review11)."""
    every_group = click.option(
        "--group", "-g", default=None, help="Only this group.  [default: every group]"
    )
    inner = namespace_option(every_group(timeout_option(command)))
    return key_option(server_key_option(server_option(inner)))


@click.group("config")
def config() -> None:
    """The configuration center: versioned configs, history, listeners, gray release."""


@config.command()
@config_write_timeout
@click.argument("data_id")
@click.option("--file", "file", default=None, help="Read the content from F ('-': stdin).")
@click.option("--content", default=None, help="The content itself.")
@click.option(
    "--type",
    "kind",
    type=click.Choice(CONFIG_TYPES),
    default=None,
    help="The content's type (default: from the file's extension, else the type it has, "
    "else text).",
)
@if_revision_option
@click.option("--desc", default=None, help="A description.")
@click.option("--tag", "tags", multiple=True, help="K=V tag; repeatable.")
@max_bytes_option
@request_id_option
@json_option
@client_options
def publish(
    data_id: str,
    file: str | None,
    content: str | None,
    kind: str | None,
    if_revision: int | None,
    desc: str | None,
    tags: tuple[str, ...],
    max_bytes: int,
    request_id: str | None,
    as_json: bool,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Create or replace DATA_ID (acknowledged by a majority of the nodes)."""
    text, guessed = _content(file, content)
    tag_map = _pairs(tags, "--tag") or None
    with _client(servers, namespace, group, timeout, config_max_bytes=max_bytes) as c:
        # neither --type nor an extension: None, the owner node keeps the type the data
        # id has (text if new) in the same write
        info = c.config_publish(
            data_id,
            text,
            type=kind or guessed,
            if_revision=if_revision,
            desc=desc,
            tags=tag_map,
            request_id=request_id,
        )
    _written("published", info, as_json)


label_option = click.option(
    "--label",
    "labels",
    multiple=True,
    help="K=V: read as a client with this label does (a gray version for it); repeatable.",
)


@config.command()
@click.argument("data_id")
@click.option("--revision", type=click.IntRange(1), default=None, help="A past revision.")
@click.option(
    "--cache-dir",
    default=None,
    envvar="MESHREG_CACHE_DIR",
    help="Disk cache directory: keeps what is read, serves it when no node answers.",
)
@label_option
@json_option
@client_options
def get(
    data_id: str,
    revision: int | None,
    cache_dir: str | None,
    labels: tuple[str, ...],
    as_json: bool,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Print DATA_ID's content as it is (--json: one object with its metadata).

    With --label, what a client with those labels gets: a gray version whose label
    selector they match, else the main one (said on stderr)."""
    mine = _pairs(labels, "--label") or None
    with _client(servers, namespace, group, timeout, cache_dir=cache_dir, labels=mine) as c:
        info = c.config_get(data_id, revision=revision)
        stale = "" if revision is not None or (info and info.from_cache) else _minority(c)
    if stale:  # said, on stderr: stdout stays the content (review81 F5: silent)
        click.echo(f"meshreg: warning: {stale}", err=True)
    if info is None:
        at = f" at revision {revision}" if revision is not None else ""
        _fail(
            f"no config {data_id!r}{at} in namespace {namespace!r}, group {group!r} (absent, "
            "deleted or pruned from the history); see `meshreg config list` / `history`"
        )
    if info.from_cache:
        click.echo(
            f"meshreg: no node answers; this is the disk cache copy (revision {info.revision})",
            err=True,
        )
    if mine:  # what a client with those labels gets on another host (review31 F4: a rule
        # naming this host's address served the gray version whatever the labels)
        info = _as_labelled(info, mine, as_json)
    if as_json:
        click.echo(json.dumps(info.to_json(), sort_keys=True))
    else:
        sys.stdout.write(info.content)
        sys.stdout.flush()


def _minority(c: Any) -> str:
    """Why what the answering node holds may be behind (its reads serve its own store):
    it sees no majority of its members ('' if it does, or if the ping fails)."""
    try:
        answer = c.ping()
    except MeshregError:
        return ""
    seen = minority_seen(answer)
    if seen is not None:
        return (
            f"the node that answered ({c.server}) sees only {seen[0]} of its {seen[1]} cluster "
            "members (cut off?): writes the others acknowledged since may be missing there; "
            f"ask another node (-s), and `meshreg cluster -s {c.server}` says which it misses"
        )
    return ""


def _as_labelled(info: ConfigInfo, labels: dict[str, str], quiet: bool) -> ConfigInfo:
    """``info`` as a client with ``labels`` on another host is served it, which version
    said on stderr (unless ``quiet``: --json says it).  The node served this host: a gray
    rule naming its address gave it the gray version whatever the labels."""
    gray = info.gray
    shown = info.served_to(labels, False)
    if shown is None:  # the main version is needed and the node did not send it
        shown = info
        click.echo("meshreg: this node does not send the main version beside the gray "
                   "one; showing what this host gets", err=True)  # fmt: skip
    if quiet:
        return shown
    which = "the gray version" if shown.gray_served else "the main version"
    rule = ""
    if gray is not None:
        rule = f" (gray rule: labels {_rule(gray.labels)}"
        if gray.clients:
            rule += ", clients " + ", ".join(_safe(c) for c in gray.clients)
        rule += ")"
    click.echo(f"meshreg: {which} for labels {_rule(labels)}{rule}", err=True)
    if info.gray_host and not shown.gray_served:
        click.echo("meshreg: the gray rule names this host: a client here gets the gray "
                   "version whatever its labels", err=True)  # fmt: skip
    return shown


def _rule(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{_safe(k)}={_safe(v)}" for k, v in sorted(labels.items())) or "none"


@config.command()
@config_write_timeout
@click.argument("data_id")
@if_revision_option
@request_id_option
@json_option
@client_options
def delete(
    data_id: str,
    if_revision: int | None,
    request_id: str | None,
    as_json: bool,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Delete DATA_ID (a new revision: a tombstone; its history stays)."""
    with _client(servers, namespace, group, timeout) as c:
        info = c.config_delete(data_id, if_revision=if_revision, request_id=request_id)
    _written("deleted", info, as_json)


@config.command("list")
@click.option("--pattern", default="*", show_default=True, help="* any run, ? one character.")
@json_option
@every_group_options
def list_(
    pattern: str, as_json: bool, servers: str, namespace: str, group: str | None, timeout: float
) -> None:
    """List the data ids of a namespace (every group unless -g is given)."""
    with _client(servers, namespace, group or DEFAULT_GROUP, timeout) as c:
        items = c.config_list(pattern=pattern, group=group, all_groups=group is None)
    if as_json:
        click.echo(json.dumps([_listed(i) for i in items], sort_keys=True))
        return
    for i in items:
        gray = " gray" if i.gray is not None else ""
        click.echo(
            f"{_safe(i.group):<20} {_safe(i.data_id):<32} {i.type:<10} rev {i.revision:<6} "
            f"{i.md5}{gray}"
        )


def _listed(info: ConfigInfo) -> dict[str, Any]:
    out = info.to_json()
    out.pop("content", None)
    out.pop("gray_served", None)
    out.pop("gray_host", None)
    out.pop("main", None)
    if out["gray"] is not None:
        out["gray"].pop("content", None)
    return out


@config.command()
@click.argument("data_id")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
@client_options
def history(
    data_id: str,
    limit: int,
    as_json: bool,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """DATA_ID's kept revisions, newest first (none: exit 1, with or without --json, as
    ``config get`` of a data id that does not exist)."""
    with _client(servers, namespace, group, timeout) as c:
        items = c.config_history(data_id, limit=limit)
    if not items:
        _fail(
            f"no history of {data_id!r} in namespace {namespace!r}, group {group!r} (never "
            "published here, or its tombstone was pruned); see `meshreg config list`"
        )
    # Two versions of one revision (two owners for a moment): the node lists the merge
    # winner first; the others lost: no majority acknowledged them (an acknowledged
    # version always wins its revision), and their own owner never showed them (review19
    # F5: nothing said which, and a rollback to the revision takes the winner)
    seen: set[int] = set()
    lost = []
    for i in items:
        lost.append(i.revision in seen)
        seen.add(i.revision)
    if as_json:
        marks = [
            ({"superseded": True} if x else {}) | ({"pending": True} if i.pending else {})
            for i, x in zip(items, lost, strict=True)
        ]
        shown = [i.to_json() | m for i, m in zip(items, marks, strict=True)]
        click.echo(json.dumps(shown, sort_keys=True))
        return
    for i, x in zip(items, lost, strict=True):
        by = f" by {_safe(i.modified_by)}" if i.modified_by else ""
        note = "  (lost to the version above at this revision: never acknowledged)" if x else ""
        if i.pending and not x:
            note = (
                "  (pending: no majority has acknowledged it yet, readers are not shown it; "
                "it takes effect once one does, or another version takes this revision)"
            )
        click.echo(
            f"rev {i.revision:<6} {i.change:<9} {_when(i.modified)}{by}  md5 {i.md5}  "
            f"{len(i.content.encode())} bytes {i.type}{note}"
        )


def _when(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


@config.command()
@config_write_timeout
@click.argument("data_id")
@click.argument("revision", type=click.IntRange(1))
@if_at_revision_option
@request_id_option
@json_option
@client_options
def rollback(
    data_id: str,
    revision: int,
    if_revision: int | None,
    request_id: str | None,
    as_json: bool,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Make REVISION's content DATA_ID's current one again (as a new revision)."""
    with _client(servers, namespace, group, timeout) as c:
        info = c.config_rollback(data_id, revision, if_revision=if_revision, request_id=request_id)
    _written(f"rolled back to revision {revision}:", info, as_json)


@config.command()
@click.argument("data_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line and change.")
@label_option
@client_options
def watch(
    data_id: str,
    as_json: bool,
    labels: tuple[str, ...],
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Print DATA_ID now and on every change until interrupted (--label: as a client
    with those labels sees it, gray versions included)."""
    mine = _pairs(labels, "--label") or None
    out_lock = threading.Lock()

    def changed(content: str | None, revision: int) -> None:
        with out_lock:
            if as_json:
                line = {
                    "namespace": namespace,
                    "group": group,
                    "data_id": data_id,
                    "revision": revision,
                    "md5": content_md5(content) if content is not None else None,
                    "content": content,
                    "deleted": content is None,
                }
                click.echo(json.dumps(line, sort_keys=True))
            elif content is None:
                click.echo(f"# {_safe(data_id)} revision {revision}: absent")
            else:
                click.echo(f"# {_safe(data_id)} revision {revision} (md5 {content_md5(content)})")
                click.echo(content)
            sys.stdout.flush()

    _warnings_to_stderr()
    with _client(servers, namespace, group, timeout, labels=mine, fail_when_refused=False) as c:
        _kept_or_raise("config watch", lambda: c.config_listen(data_id, changed))
        _wait_for_signal()


@config.command()
@config_write_timeout
@click.argument("data_id")
@click.option("--file", "file", default=None, help="Read the gray content from F ('-': stdin).")
@click.option("--content", default=None, help="The gray content itself.")
@click.option("--label", "labels", multiple=True, help="K=V: clients with this label; repeatable.")
@click.option(
    "--client",
    "clients",
    multiple=True,
    help="HOST: the IP address of a client as the node sees it (no port); repeatable.",
)
@click.option("--type", "kind", type=click.Choice(CONFIG_TYPES), default=None)
@if_at_revision_option
@max_bytes_option
@request_id_option
@json_option
@client_options
def gray(
    data_id: str,
    file: str | None,
    content: str | None,
    labels: tuple[str, ...],
    clients: tuple[str, ...],
    kind: str | None,
    if_revision: int | None,
    max_bytes: int,
    request_id: str | None,
    as_json: bool,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Publish a gray version of DATA_ID for the clients with every --label or a --client
    address; everyone else keeps the main version."""
    if not labels and not clients:
        raise click.UsageError("give --label K=V and/or --client HOST: who gets the gray version")
    text, guessed = _content(file, content)
    with _client(servers, namespace, group, timeout, config_max_bytes=max_bytes) as c:
        info = c.config_gray(
            data_id,
            text,
            labels=_pairs(labels, "--label") or None,
            clients=list(clients) or None,
            type=kind or guessed,
            if_revision=if_revision,
            request_id=request_id,
        )
    _written("gray", info, as_json)


@config.command()
@config_write_timeout
@click.argument("data_id")
@if_at_revision_option
@request_id_option
@json_option
@client_options
def promote(
    data_id: str,
    if_revision: int | None,
    request_id: str | None,
    as_json: bool,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Make DATA_ID's gray version the main one, for everyone."""
    with _client(servers, namespace, group, timeout) as c:
        info = c.config_promote(data_id, if_revision=if_revision, request_id=request_id)
    _written("promoted", info, as_json)


@config.command("gray-drop")
@config_write_timeout
@click.argument("data_id")
@if_at_revision_option
@request_id_option
@json_option
@client_options
def gray_drop(
    data_id: str,
    if_revision: int | None,
    request_id: str | None,
    as_json: bool,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Remove DATA_ID's gray version (its clients get the main one again)."""
    with _client(servers, namespace, group, timeout) as c:
        info = c.config_gray_drop(data_id, if_revision=if_revision, request_id=request_id)
    _written("gray dropped", info, as_json)


@config.command()
@click.option(
    "--out",
    "out",
    default=None,
    help="The zip file to write ('-': stdout; default meshreg-configs-NAMESPACE.zip).",
)
@click.option(
    "--history",
    type=click.IntRange(0, MAX_EXPORT_HISTORY),
    default=DEFAULT_EXPORT_HISTORY,
    show_default=True,
    help="Past versions kept per data id ('import --history' replays them).",
)
@every_group_options
def export(
    out: str | None, history: int, servers: str, namespace: str, group: str | None, timeout: float
) -> None:
    """Export a namespace's configs (every group unless -g is given) as a zip: the current
    versions, their gray versions and their history, and the deleted data ids whose
    tombstone is kept (so an import deletes them too)."""
    from meshreg.client.config_archive import export_namespace  # only here (zipfile and all)

    target = out or f"meshreg-configs-{namespace}.zip"
    only = group
    tmp = None
    try:
        with _client(servers, namespace, group or DEFAULT_GROUP, timeout) as c:
            if target == "-":
                import io

                buf = io.BytesIO()
                count = export_namespace(c, buf, only, history)
                sys.stdout.buffer.write(buf.getvalue())
                sys.stdout.flush()
            else:
                tmp = f"{target}.tmp-{os.getpid()}"
                # configs hold passwords: 0600, as a snapshot and the data dir (review58 F5)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    count = export_namespace(c, fh, only, history)
                os.replace(tmp, target)
                tmp = None
    except OSError as exc:
        _fail(f"cannot write {target}: {exc}")
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    where = "stdout" if target == "-" else target
    click.echo(
        f"exported {count} config(s) of namespace {namespace!r} (deleted ones included) to {where}",
        err=True,
    )
    if not count:  # a typo in a backup script's -n/-g wrote an empty archive (review82 F12)
        in_group = f" group {group!r}" if group else ""
        click.echo(
            f"meshreg: warning: namespace {namespace!r}{in_group} holds no configs at "
            f"{servers}: the archive is empty; check -n/-g (`meshreg config list -n NAME` "
            "lists a namespace's configs)",
            err=True,
        )


@config.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=False))
@click.option(
    "--on-conflict",
    type=click.Choice(ON_CONFLICT),
    default="abort",
    show_default=True,
    help="A data id that exists: abort (write nothing), skip it, or overwrite it.",
)
@click.option(
    "--history",
    "with_history",
    is_flag=True,
    help="Replay each data id's archived history first, oldest first, as new revisions "
    "(the history then reads as at the source: its revision numbers where the data id is "
    "absent here, new times).",
)
@max_bytes_option
@json_option
@client_options
def import_(
    file: str,
    on_conflict: str,
    with_history: bool,
    max_bytes: int,
    as_json: bool,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Import an export zip into the namespace given with -n (groups as in the zip; with
    -g, only that group's data ids); a data id deleted at the source is deleted here (with
    --on-conflict overwrite)."""
    from meshreg.client.config_archive import import_items, read_archive  # only here

    try:
        items = read_archive(file, history=with_history)
    except MeshregError as exc:
        _fail(str(exc))
    source = click.get_current_context().get_parameter_source("group")
    if source is click.core.ParameterSource.COMMANDLINE:
        # -g given: that group only (review of 2026-12-07: it was accepted and ignored,
        # every group of the archive imported)
        groups = sorted({i.group for i in items})
        items = [i for i in items if i.group == group]
        if not items:
            names = ", ".join(map(repr, groups)) or "none"
            _fail(
                f"{file} holds no data id of group {group!r} (its groups: {names}); leave "
                "out -g to import them all"
            )
    with _client(servers, namespace, group, timeout, config_max_bytes=max_bytes) as c:
        report = import_items(c, items, on_conflict, history=with_history)
    if as_json:
        click.echo(json.dumps(report.to_json(), sort_keys=True))
    else:
        click.echo(
            f"imported into namespace {namespace!r}: {len(report.created)} created, "
            f"{len(report.overwritten)} overwritten, {len(report.skipped)} skipped, "
            f"{len(report.failed)} failed; {len(report.gray)} gray version(s); "
            f"{len(report.deleted)} deleted, {len(report.absent)} deleted at the source and "
            f"absent here; {report.history} past version(s) replayed"
        )
        for (g, d), error in report.failed:
            how = "outcome unknown" if (g, d) in report.unknown else "failed"
            click.echo(f"  {how} {_safe(g)}/{_safe(d)}: {_safe(error)}", err=True)
        if report.failed:  # (review19 F7: the per-item advice names request ids it never shows)
            again = "skip" if on_conflict != "overwrite" else "overwrite"
            unknown = len(report.unknown)
            written = len(report.failed) - unknown
            told = [f"{written} config(s) not imported"] if written else []
            if unknown:  # (review57: they were said "not imported", and some were written)
                told.append(f"{unknown} whose last write got no answer (it may have been "
                            "applied)")  # fmt: skip
            click.echo(
                f"{' and '.join(told)}: once the cluster answers again (a majority up), run "
                f"the same import with --on-conflict {again}: what was written meanwhile is "
                + ("skipped" if again == "skip" else "written again")
                + ", the rest imported",
                err=True,
            )
        if report.below:
            shown = ", ".join(f"{_safe(g)}/{_safe(d)}" for g, d in report.below[:10])
            more = f" and {len(report.below) - 10} more" if len(report.below) > 10 else ""
            click.echo(
                f"warning: {len(report.below)} config(s) written below their archived "
                f"revision ({shown}{more}): a node older than this client ignored "
                "revision_floor; clients that saw the source's revisions will not see these "
                "until they are restarted",
                err=True,
            )
    if report.failed:
        sys.exit(1)


@config.command("force-ready")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@server_option
@timeout_option
@security_options
def force_ready(as_json: bool, servers: str, timeout: float) -> None:
    """Make ONE node serve config reads now without catching up from a majority.

    The operator's override of the ready gate for a lone survivor (docs/CONFIG.md, "The
    ready gate"), without the restart --config-force-ready needs: configs acknowledged by
    a majority without this node stay missing on it until a peer comes back.  Writes still
    need a majority.  Give exactly one node with -s; needs admin access to everything."""
    ctx = click.get_current_context()
    named = ctx.get_parameter_source("servers") is click.core.ParameterSource.COMMANDLINE
    if not named and not ctx.meta.get("meshreg.servers_first"):  # (review61 F6)
        raise click.UsageError(
            "force-ready drops a safety gate on one node: name it with -s host:port "
            f"(MESHREG_SERVERS and the default {servers!r} are not used for it)"
        )
    if len([s for s in servers.split(",") if s.strip()]) != 1:
        raise click.UsageError(
            f"force-ready acts on one node: give exactly one -s host:port (got {servers!r})"
        )
    with _client(servers, DEFAULT_NAMESPACE, DEFAULT_GROUP, timeout) as c:
        result = c.config_force_ready()
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    node = _safe(result["node"])
    if not result["was_ready"]:
        click.echo(
            f"{node}: config reads FORCED ready (not caught up from a majority of its "
            "members); writes still need a majority; the override lasts until the node has "
            "caught up with a majority (its peers back) or restarts"
        )
    elif result["forced_ready"]:
        click.echo(f"{node}: already forced ready; nothing changed")
    else:
        click.echo(f"{node}: already ready (caught up, or no peers); nothing changed")
