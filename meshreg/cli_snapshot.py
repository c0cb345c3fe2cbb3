"""``meshreg snapshot ...``: back up a node's data dir while it runs, restore it, inspect a
snapshot (runtime/snapshot.py; docs/OPERATIONS.md, "Backup and restore")."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from meshreg.cli import _fail
from meshreg.errors import ConfigError


def _data_dir(data_dir: str | None, config_file: str | None) -> str:
    """The data dir named, else the one of ``--config``, else the node's default
    (127.0.0.1:7800's, as ``meshreg node`` with no option uses)."""
    from meshreg.config import default_data_dir, load_node_config

    if data_dir:
        return data_dir
    cfg = load_node_config(config_file)
    return cfg.data_dir or str(default_data_dir(cfg.host, cfg.port))


def data_dir_options(command: Any) -> Any:
    command = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        help="The node's config file: its [node] data_dir (or its host and port's default).",
    )(command)
    return click.option(
        "--data-dir",
        help="The node's data dir (default: that of --config, else of a node started with no "
        "option: ~/.local/state/meshreg/127.0.0.1_7800).",
    )(command)


@click.group()
def snapshot() -> None:
    """Back up and restore a node's data: configs, their history, and what operators set on
    the registry (thresholds, service metadata, drains, weights)."""


@snapshot.command()
@data_dir_options
@click.option("--out", "out", help="The snapshot file (default: meshreg-<UTC time>.snap).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def save(data_dir: str | None, config_file: str | None, out: str | None, as_json: bool) -> None:
    """Write a snapshot of a node's data dir; safe while the node runs (each database is
    copied in one consistent read). One node's snapshot backs up the whole cluster."""
    from meshreg.runtime.snapshot import save_snapshot

    target = out or time.strftime("meshreg-%Y%m%dT%H%M%SZ.snap", time.gmtime())
    try:
        manifest = save_snapshot(_data_dir(data_dir, config_file), target)
    except ConfigError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps({**manifest, "path": target}, sort_keys=True))
        return
    click.echo(f"snapshot of {manifest['data_dir']} written to {target}: {_summary(manifest)}")


@snapshot.command()
@click.argument("archive", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect(archive: str, as_json: bool) -> None:
    """Check a snapshot (every file's checksum) and say what it holds."""
    from meshreg.runtime.snapshot import read_manifest

    try:
        manifest = read_manifest(archive)
    except ConfigError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(manifest, sort_keys=True))
        return
    click.echo(f"snapshot {archive}: format {manifest['format']}, meshreg {manifest['meshreg']}")
    click.echo(f"taken {manifest['created']} from {manifest['data_dir']} ({manifest['node']})")
    click.echo(f"holds {_summary(manifest)}; checksums ok")


@snapshot.command()
@click.argument("archive", type=click.Path(dir_okay=False))
@data_dir_options
@click.option(
    "--force",
    is_flag=True,
    help="Restore over a data dir that holds data (its files are moved into replaced-<time>/).",
)
@click.option(
    "--bump-revision",
    "bump",
    type=int,
    default=0,
    show_default=True,
    help="Raise every config revision by N (etcd's flag): for a whole lost cluster, N above "
    "the writes of any data id since the snapshot (e.g. 1000000), the same N on every member; "
    "never for one member of a running cluster.",
)
def restore(
    archive: str, data_dir: str | None, config_file: str | None, force: bool, bump: int
) -> None:
    """Put a snapshot into a stopped node's data dir, then start the node. For a lost
    cluster: restore this same snapshot, with the same --bump-revision, into every
    member's data dir before any starts (members started empty beside a restored one are
    a majority: they acknowledge writes that the restored data then overrides)."""
    from meshreg.runtime.snapshot import restore_snapshot

    target = _data_dir(data_dir, config_file)
    try:
        manifest = restore_snapshot(archive, target, force=force, bump_revision=bump)
    except ConfigError as exc:
        _fail(str(exc))
    click.echo(f"restored {archive} into {target}: {_summary(manifest)}")
    if bump:
        click.echo(f"every config revision raised by {bump}")
    elif manifest.get("counts", {}).get("data_ids"):
        click.echo(
            "config revisions are as in the snapshot: clients that ran through the outage "
            "and saw newer revisions refuse to step back to them (their listeners are not "
            "called until a data id's revision passes what they saw); restoring a whole "
            "lost cluster, restore with --bump-revision N (the same N on every member)"
        )
    if manifest["replaced"]:
        click.echo(f"what {target} held before is in {manifest['replaced']}")
    click.echo(
        "start the node on this data dir; it merges with its peers as after a restart. "
        "Rebuilding a lost cluster: restore this same snapshot into every member's data dir "
        "before starting any (never start members with empty data dirs beside it)"
    )


def _summary(manifest: dict[str, Any]) -> str:
    counts = manifest.get("counts") or {}
    return (
        f"{counts.get('data_ids', 0)} config(s) in {counts.get('config_namespaces', 0)} "
        f"namespace(s) ({counts.get('config_versions', 0)} versions with history), "
        f"{counts.get('service_settings', 0)} service setting(s), "
        f"{counts.get('instance_overrides', 0)} instance override(s)"
    )
