"""The ``meshreg`` command line: thin click commands over the client and runtime."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from meshreg import __version__
from meshreg.addresses import parse_address
from meshreg.client.defaults import (
    BEAT_INTERVAL_BOUNDS,
    DEFAULT_BEAT_INTERVAL,
    RETRYING_IN_BACKGROUND,
)
from meshreg.errors import ConfigError, MeshregError, ServerError
from meshreg.model import (
    DEFAULT_CLUSTER,
    DEFAULT_GROUP,
    DEFAULT_NAMESPACE,
    Instance,
    InstanceFilter,
)
from meshreg.text import printable

if TYPE_CHECKING:
    from meshreg.client.client import Client

# Each command imports what it runs (the client in ``_client``, the node's runtime and
# settings in ``node``): a command, or ``--help``, loads nothing the others need, and
# every start of the CLI costs only its own command's imports (bench/startup.py).

DEFAULT_SERVERS = "127.0.0.1:7800"
LOOKUP_SHARE = 0.25  # of a one-shot write's --timeout, for the read before it (its message)
MIN_CALL_TIMEOUT = 0.05  # s; the least a call of a one-shot command is given


def _servers(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A command's own ``-s`` wins; else ``meshreg -s X COMMAND`` (etcdctl's and consul's
    users put connection flags first: review45 F10), then MESHREG_SERVERS."""
    first = ctx.meta.get("meshreg.servers_first")
    source = ctx.get_parameter_source(param.name or "servers")
    if first and source is not click.core.ParameterSource.COMMANDLINE:
        return str(first)
    return value


server_option = click.option(
    "--server",
    "-s",
    "servers",
    envvar="MESHREG_SERVERS",
    default=DEFAULT_SERVERS,
    show_default=True,
    callback=_servers,
    help="host:port[,host:port...] of meshreg nodes (env MESHREG_SERVERS; also accepted "
    "before the command: meshreg -s X ping).",
)
namespace_option = click.option("--namespace", "-n", default=DEFAULT_NAMESPACE, show_default=True)
group_option = click.option("--group", "-g", default=DEFAULT_GROUP, show_default=True)
timeout_option = click.option(
    "--timeout",
    default=3.0,
    show_default=True,
    type=float,
    help="Seconds to wait for an answer before giving up.",
)

WRITE_TIMEOUT_HELP = (
    "Seconds to wait for the write before giving up (default: 10 s, so that a write whose "
    "owner just stopped is made by its successor)."
)


def config_write_timeout(command: Any) -> Any:
    """Under ``@config.command()``: a config write's ``--timeout`` help names its own
    default budget (review82 F7: every command's help said it, ``ping``'s too)."""
    for param in getattr(command, "__click_params__", ()):
        if param.name == "timeout":
            param.help = WRITE_TIMEOUT_HELP
            param.show_default = False  # (the 3.0 shown was not this command's)
    return command


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Key options are read by ``_client`` from the context, not passed to every command."""
    ctx.meta[f"meshreg.{param.name}"] = value


key_option = click.option(
    "--key",
    "key",
    envvar="MESHREG_KEY",
    default=None,
    expose_value=False,
    callback=_remember,
    type=click.Path(dir_okay=False),
    help="This client's key file (meshreg keygen) for nodes that run with a key (env MESHREG_KEY).",
)
server_key_option = click.option(
    "--server-key",
    "server_key",
    envvar="MESHREG_SERVER_KEY",
    default=None,
    expose_value=False,
    callback=_remember,
    type=click.Path(dir_okay=False),
    help="The cluster's public key file (cluster.pub) (env MESHREG_SERVER_KEY).",
)


def client_options(command: Any) -> Any:
    """--server, --namespace, --group, --timeout, --key and --server-key (client commands)."""
    return key_option(
        server_key_option(server_option(namespace_option(group_option(timeout_option(command)))))
    )


def security_options(command: Any) -> Any:
    """--key and --server-key alone, for commands without a namespace."""
    return key_option(server_key_option(command))


def _fail(message: str) -> None:
    message = message.replace(RETRYING_IN_BACKGROUND, "")  # this command's client is closed
    click.echo(f"meshreg: error: {_safe(message)}", err=True)
    sys.exit(1)


def _safe(value: object) -> str:
    """Text for a terminal: control and other non-printable characters (an escape
    sequence in someone's metadata, a bidi override, a NUL) shown as ``\\x1b``,
    ``\\u202e``, ``\\x00``, never sent to the terminal as they are. --json output
    needs none of this: JSON escapes control characters itself."""
    return printable(str(value))


def _safe_tree(value: Any) -> Any:
    """Every string in a reply (keys too) made safe for a terminal, for human output."""
    if isinstance(value, str):
        return _safe(value)
    if isinstance(value, dict):
        return {_safe_tree(k): _safe_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_safe_tree(v) for v in value]
    return value


def _warnings_to_stderr() -> None:
    """A long-running command that prints to stdout (``watch``, ``config watch``) says on
    stderr what the client warns of: its node lost, a list served from the cache
    (review45 F3: with a node killed under it, it printed nothing, and an operator could
    not tell "no change" from "blind")."""
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@contextmanager
def _client(
    servers: str, namespace: str, group: str, timeout: float, **kw: Any
) -> Iterator[Client]:
    if not logging.getLogger().handlers:  # one-shot commands: _fail prints the one error line
        logging.getLogger("meshreg").addHandler(logging.NullHandler())
        logging.getLogger("meshreg").propagate = False
    from meshreg.client.client import Client

    if kw.get("fail_when_refused", True):  # one-shot: a name that resolves nowhere, now
        _check_resolvable(servers)

    ctx = click.get_current_context(silent=True)
    given = ctx is not None and ctx.get_parameter_source("timeout") not in (
        None,
        click.core.ParameterSource.DEFAULT,
    )
    kw.setdefault("config_write_timeout", timeout if given else None)  # (Client's default)
    try:
        client = Client(
            servers,
            namespace=namespace,
            group=group,
            timeout=timeout,
            attempt_timeout=min(1.0, timeout),
            **_keys(),
            **{"fail_when_refused": True, **kw},  # one-shot: nothing listening, said at once
        )
    except (MeshregError, ValueError) as exc:
        _fail(str(exc))
    try:
        yield client
    except MeshregError as exc:
        client.close(timeout=0.5)
        _fail(str(exc))
    except KeyboardInterrupt as exc:  # Ctrl-C: not click's bare "Aborted!" (review82 F3)
        client.close(timeout=0.5)
        unknown = getattr(exc, "meshreg_outcome_unknown", None)
        click.echo(f"meshreg: interrupted{': ' + unknown if unknown else ''}", err=True)
        sys.exit(128 + signal.SIGINT)  # 130, as a shell says of a command ended by Ctrl-C
    else:
        client.close()


def _check_resolvable(servers: str) -> None:
    """Fail at once when no server name resolves (review45 F5: a one-shot command waited
    its whole --timeout to say it; a long-lived one waits, as DNS may come up)."""
    import socket

    from meshreg.client.client import _parse_servers

    try:
        parsed = _parse_servers(servers)
    except (ConfigError, ValueError):
        return  # the client says what is wrong with the list
    failed = []
    for host, port in parsed:
        try:
            socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
            return  # one resolves: the client tries it
        except (OSError, UnicodeError) as exc:
            failed.append(f"{host}:{port} ({exc})")
    _fail(
        f"cannot resolve the server name(s) {', '.join(failed)}: check --server / "
        "MESHREG_SERVERS (host:port, e.g. 127.0.0.1:7800)"
    )


def _keys() -> dict[str, str | None]:
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    key, server_key = meta.get("meshreg.key"), meta.get("meshreg.server_key")
    if (key is None) != (server_key is None):  # said in the flags' names (review82 F14)
        given, missing = (
            ("--server-key (MESHREG_SERVER_KEY)", "--key (MESHREG_KEY)")
            if key is None
            else ("--key (MESHREG_KEY)", "--server-key (MESHREG_SERVER_KEY)")
        )
        raise click.UsageError(
            f"{given} given without {missing}: a client of a node with a key needs its own "
            "key file (meshreg keygen NAME) and the cluster's public key (cluster.pub)"
        )
    return {"key": key, "server_key": server_key}


def _host_port(text: str) -> tuple[str, int]:
    try:
        return parse_address(text, default_port=0)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def _parse_meta(items: tuple[str, ...]) -> dict[str, str]:
    metadata = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"--meta {item!r}: expected key=value")
        metadata[k] = v
    return metadata


def _instance_json(i: Instance) -> dict[str, Any]:
    return i.to_wire()


def _instance_line(i: Instance) -> str:
    state = "healthy" if i.healthy else "UNHEALTHY"
    if not i.enabled:
        state += ",disabled"
    meta = " ".join(f"{_safe(k)}={_safe(v)}" for k, v in sorted(i.metadata.items()))
    return (
        f"{_safe(i.address):<24} {_safe(i.cluster):<10} {i.weight:<7g} {state:<18} {meta}"
    ).rstrip()


def _stop_event() -> threading.Event:
    """An event set by SIGINT or SIGTERM."""
    done = threading.Event()

    def handler(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return done


def _wait_for_signal(done: threading.Event | None = None) -> None:
    """Block until SIGINT or SIGTERM."""
    done = done or _stop_event()
    while not done.wait(0.5):
        pass


@click.group()
@click.version_option(__version__, prog_name="meshreg")
@click.option(
    "--server",
    "-s",
    "servers",
    default=None,
    metavar="HOST:PORT[,...]",
    help="The nodes every command asks (as the command's own -s, which wins).",
)
@click.pass_context
def main(ctx: click.Context, servers: str | None) -> None:
    """meshreg: service registry on a ZeroMQ peer mesh."""
    if servers:
        ctx.meta["meshreg.servers_first"] = servers


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option(
    "--port", default=None, type=int, help="Request port (default 7800); notifications on port+1."
)
@click.option(
    "--advertise",
    default=None,
    help="Address peers and clients reach this node at (default: --host); required in a "
    "cluster when --host is 0.0.0.0 or ::.",
)
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="TOML config file ([node], [health], [cluster], [config], [security], [limits]; "
    "deploy/node.toml lists every key).",
)
@click.option(
    "--check-interval", type=float, default=None, help="Seconds between health sweeps (5)."
)
@click.option(
    "--unhealthy-after",
    type=float,
    default=None,
    help="Seconds without a beat before unhealthy (15).",
)
@click.option(
    "--evict-after", type=float, default=None, help="Seconds without a beat before removal (30)."
)
@click.option(
    "--self-preservation/--no-self-preservation",
    "self_preservation",
    default=None,
    help="Evict nothing while most instances miss their beats at once (on).",
)
@click.option(
    "--self-preservation-threshold",
    type=float,
    default=None,
    help="Share of instances silent at once that turns self-preservation on (0.85).",
)
@click.option(
    "--self-preservation-min",
    type=int,
    default=None,
    help="Fewest silent instances that turn self-preservation on (10).",
)
@click.option("--node-id", default=None, help="This node's id in the cluster (default host:port).")
@click.option(
    "--peer",
    "peers",
    multiple=True,
    help="host:port of another node (repeat; may include this node). Enables cluster mode.",
)
@click.option(
    "--peer-timeout", type=float, default=None, help="Seconds of silence before a peer is down (3)."
)
@click.option(
    "--replication-batch",
    type=int,
    default=None,
    help="Deltas per replication message at most (256); 1 sends every change on its own.",
)
@click.option(
    "--log-level",
    default=None,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--key",
    default=None,
    type=click.Path(dir_okay=False),
    help="The cluster's key file (meshreg keygen): CURVE on every socket (docs/SECURITY.md).",
)
@click.option(
    "--acl",
    default=None,
    type=click.Path(dir_okay=False),
    help="Access control file (TOML): client keys and what they may do; reread on SIGHUP.",
)
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Serve on a non-loopback address without a key (trusted networks only).",
)
@click.option(
    "--data-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Where the node keeps its configs (SQLite); default "
    "$XDG_STATE_HOME/meshreg/HOST_PORT (~/.local/state when unset).",
)
@click.option(
    "--config-force-ready",
    is_flag=True,
    default=None,
    help="Serve config reads from this node's own disk at once, without catching up from "
    "a majority of its peers (for a lone survivor whose peers will not come back). Reads "
    "may miss writes acknowledged without this node; writes still need a majority. Remove "
    "it once the peers are back (docs/CONFIG.md, 'The ready gate').",
)
@click.option(
    "--config-join-existing",
    is_flag=True,
    default=None,
    help="This node joins a cluster that already holds configs: a member replaced with an "
    "empty data directory, or added to a running cluster. Until its configs have caught "
    "up from whole peers it never counts as a new cluster's member (etcd's "
    "--initial-cluster-state existing; docs/CONFIG.md, 'A store that started empty').",
)
def node(
    host: str | None,
    port: int | None,
    advertise: str | None,
    config_path: str | None,
    check_interval: float | None,
    unhealthy_after: float | None,
    evict_after: float | None,
    self_preservation: bool | None,
    self_preservation_threshold: float | None,
    self_preservation_min: int | None,
    node_id: str | None,
    peers: tuple[str, ...],
    peer_timeout: float | None,
    replication_batch: int | None,
    log_level: str | None,
    key: str | None,
    acl: str | None,
    insecure: bool | None,
    data_dir: str | None,
    config_force_ready: bool | None,
    config_join_existing: bool | None,
) -> None:
    """Run a registry node (default 127.0.0.1:7800, no config needed)."""
    from meshreg.config import default_data_dir, load_node_config
    from meshreg.runtime.node import NodeRuntime, StartOver
    from meshreg.transport.descriptors import raise_descriptor_limit

    try:
        cfg = load_node_config(config_path).with_overrides(
            host=host,
            port=port,
            advertise=advertise,
            check_interval=check_interval,
            unhealthy_after=unhealthy_after,
            evict_after=evict_after,
            self_preservation=self_preservation,
            self_preservation_threshold=self_preservation_threshold,
            self_preservation_min=self_preservation_min,
            node_id=node_id,
            peers=peers,
            peer_timeout=peer_timeout,
            replication_batch=replication_batch,
            log_level=log_level.upper() if log_level else None,
            key=key,
            acl=acl,
            insecure=insecure,
            data_dir=data_dir,
            config_force_ready=config_force_ready,
            config_join_existing=config_join_existing,
        )
        if not cfg.data_dir:  # the node keeps its configs on disk (docs/CONFIG.md)
            cfg = cfg.with_overrides(data_dir=str(default_data_dir(cfg.host, cfg.port)))
    except ConfigError as exc:
        _fail(str(exc))
    logging.basicConfig(
        level=cfg.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    raise_descriptor_limit()  # this process is the node: one descriptor per connection

    def start() -> NodeRuntime:
        try:
            runtime = NodeRuntime(cfg, avoid_full_gc=True)  # this process is the node
            if config_path:  # a reload says what of the file it does not apply (review27 F5)
                runtime.config_file = (config_path, load_node_config(config_path))
            runtime.bind()
        except ConfigError as exc:
            _fail(str(exc))
        return runtime

    running = [start()]

    def stop(signum: int, frame: object) -> None:
        logging.getLogger("meshreg.node").info(
            "received %s; shutting down", signal.Signals(signum).name
        )
        running[0].stop()

    def reload(signum: int, frame: object) -> None:
        running[0].reload()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, reload)
    while True:
        try:
            running[0].run()
            return
        except StartOver:  # back from a stall too long to keep its table (logged)
            running[0] = start()  # (its loop closed everything on the way out)


@main.command()
@click.argument("service")
@click.argument("address")
@click.option("--weight", type=float, default=1.0, show_default=True)
@click.option("--meta", multiple=True, help="k=v metadata; repeatable.")
@click.option("--cluster", default=DEFAULT_CLUSTER, show_default=True)
@click.option(
    "--beat-interval",
    type=click.FloatRange(*BEAT_INTERVAL_BOUNDS),  # the Client's (review82 F14: its words)
    default=DEFAULT_BEAT_INTERVAL,
    show_default=True,
    help="Seconds between beats (session renewals).",
)
@client_options
def register(
    service: str,
    address: str,
    weight: float,
    meta: tuple[str, ...],
    cluster: str,
    beat_interval: float,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Register SERVICE at ADDRESS (host:port) and beat until SIGINT/SIGTERM, then deregister."""
    host, port = _host_port(address)
    if not port:
        raise click.BadParameter("ADDRESS must be host:port")
    metadata = _parse_meta(meta)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = _stop_event()
    sidecar = {"beat_interval": beat_interval, "fail_when_refused": False}  # nodes restart
    with _client(servers, namespace, group, timeout, **sidecar) as c:
        try:  # a sidecar started while no node answers waits for one (review20)
            c.register(service, host, port, weight=weight, metadata=metadata, cluster=cluster)
        except MeshregError as exc:
            if not exc.registration_kept:  # a refusal: waiting changes nothing
                raise
            click.echo(f"meshreg: {_unkept(exc)}; trying again until a node takes it (Ctrl-C "
                       "to stop)", err=True)  # fmt: skip
            while c.kept_registrations and not stop.wait(0.1):
                pass  # the client makes it once a node answers
            if not stop.is_set():  # made, or dropped (a refusal): registering again says
                # which (idempotent when made; a refusal exits 1)
                c.register(service, host, port, weight=weight, metadata=metadata, cluster=cluster)
        made = not stop.is_set()
        if made:
            click.echo(
                f"registered {service} {address} on {c.server}; beating every "
                f"{c.beat_every:.3g}s (Ctrl-C to deregister)",
                err=True,
            )
            _wait_for_signal(stop)
        # stopped while still trying, too: a node may hold it already (a try got no
        # answer: it may be applied); with no node up, the deregister fails and says so
        # (exit 1); a registration no try of which ever left this client is only dropped
        # (review61 F4: it waited --timeout, then exited 1)
        if made:
            click.echo(f"deregistering {service} {address}", err=True)
        else:  # (review82 F10: "deregistering" what no node had taken)
            click.echo(f"stopped before a node took {service} {address}: withdrawing the "
                       "registration (from a node, if a try that got no answer reached it)",
                       err=True)  # fmt: skip
        c.deregister(service, host, port, cluster=cluster)  # an error here exits 1


@main.command()
@click.argument("service")
@click.argument("address")
@click.option("--cluster", default=DEFAULT_CLUSTER, show_default=True)
@client_options
def deregister(
    service: str,
    address: str,
    cluster: str,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Remove the instance ADDRESS (host:port) of SERVICE.

    A provider that is still running registers it again at its next renewal (as
    Nacos's does): to take an instance out for good, stop its provider, or drain it
    with `meshreg instance-set SERVICE ADDRESS --enabled false`. Removing an instance
    that is not registered is not an error (deregistration is idempotent).
    """
    host, port = _host_port(address)
    if not port:
        raise click.BadParameter("ADDRESS must be host:port")
    with _client(servers, namespace, group, timeout) as c:
        # --timeout bounds the command: the look-up (only for the message below) gets a
        # share of it, the write the rest (each had the whole: 4.25 s for --timeout 2)
        started = time.monotonic()
        c.timeout = max(MIN_CALL_TIMEOUT, timeout * LOOKUP_SHARE)
        listed = _listed(c, service, host, port, cluster)
        c.timeout = max(MIN_CALL_TIMEOUT, timeout - (time.monotonic() - started))
        c.deregister(service, host, port, cluster=cluster)
    if listed is False:  # idempotent: said so, not an error
        click.echo(
            f"nothing to deregister: {service} {address} (cluster {cluster}) was not listed "
            f"at {servers} (check the address, -n/-g and --cluster); nothing changed"
        )
    else:
        click.echo(f"deregistered {service} {address}")


def _listed(c: Client, service: str, host: str, port: int, cluster: str) -> bool | None:
    """Whether the instance is listed (None: this key may not read, or the read failed)."""
    try:
        found = c.instances(service, healthy_only=False)
    except MeshregError:
        return None
    return any(i.ip == host and i.port == port and i.cluster == cluster for i in found)


@main.command()
@click.argument("service")
@click.option("--all", "show_all", is_flag=True, help="Include unhealthy and disabled instances.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("--cluster", "clusters", multiple=True, help="Only this cluster's; repeatable.")
@click.option("--meta", multiple=True, help="k=v: only instances with it; repeatable.")
@client_options
def instances(
    service: str,
    show_all: bool,
    as_json: bool,
    clusters: tuple[str, ...],
    meta: tuple[str, ...],
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """List the instances of SERVICE (healthy ones unless --all)."""
    hidden = total = 0
    wanted, pairs = (clusters or None), _parse_meta(meta)
    partial = ""
    with _client(servers, namespace, group, timeout) as c:
        found = c.instances(service, healthy_only=not show_all, clusters=wanted, metadata=pairs)
        if not found and not as_json:
            total = len(c.instances(service, healthy_only=False))  # all registered
            if not show_all:  # those the filters match but unhealthy or disabled
                hidden = len(c.instances(service, False, wanted, pairs))
            partial = _partial_view(c)
    if as_json:
        click.echo(json.dumps([_instance_json(i) for i in found]))
        return
    for i in found:
        click.echo(_instance_line(i))
    if not found:  # said, on stderr: an empty stdout alone reads like a failure
        where = f"{_safe(service)} (namespace {namespace}, group {group}) at {servers}"
        narrowed = _safe(InstanceFilter.of(wanted, pairs).words(quote=False))
        if partial:
            text = f"no instance of {where}{narrowed}; {partial}"
        elif not total:
            text = f"no instance of {where}: none registered (check the name, -n and -g)"
        elif hidden:
            text = (
                f"no healthy, enabled instance of {where}{narrowed}; {hidden} unhealthy or "
                "disabled: --all lists them"
            )
        else:
            text = f"no instance of {where}{narrowed}; {total} registered without that filter"
        click.echo(text, err=True)


def minority_seen(ping_answer: dict[str, Any]) -> tuple[int, int] | None:
    """(members up, members) of a ``ping`` answer from a node that sees no majority of its
    configured members; None otherwise."""
    up, members = ping_answer.get("members_up"), ping_answer.get("members")
    if type(up) is int and type(members) is int and members > 1 and up * 2 <= members:
        return up, members
    return None


def _partial_view(c: Client) -> str:
    """Why the answering node's empty list may not be the cluster's ('' if nothing says
    so): it has not caught up from its peers (started or resynced a moment ago), or it
    sees only a minority of its members (cut off: what its peers took may be missing)."""
    try:
        answer = c.ping()
    except MeshregError:
        return ""
    server = f"the node that answered ({c.server})"
    if answer.get("ready") is False:
        return (
            f"{server} has not caught up from its peers yet (it started or came back a "
            "moment ago): what they hold may be missing there; try again in a moment, or ask "
            "another node (-s)"
        )
    seen = minority_seen(answer)
    if seen is not None:
        up, members = seen
        return (
            f"{server} sees only {up} of its {members} cluster members (cut off?): instances "
            "registered through the others may be missing there; ask another node (-s), "
            f"and `meshreg cluster -s {c.server}` says which members it misses"
        )
    return ""


@main.command("service-set")
@click.argument("service")
@click.option(
    "--protect-threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Below this healthy share, queries return every instance (0 turns it off).",
)
@click.option("--meta", multiple=True, help="k=v service metadata (replaces it); repeatable.")
@click.option("--clear-meta", is_flag=True, help="Remove the service's metadata.")
@client_options
def service_set(
    service: str,
    protect_threshold: float | None,
    meta: tuple[str, ...],
    clear_meta: bool,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Change a service's settings: protection threshold and metadata."""
    metadata = _parse_meta(meta) if meta else ({} if clear_meta else None)
    if protect_threshold is None and metadata is None:
        raise click.UsageError("give --protect-threshold, --meta k=v or --clear-meta")
    with _client(servers, namespace, group, timeout) as c:
        c.set_service(service, protect_threshold=protect_threshold, metadata=metadata)
        click.echo(f"updated service {service}")


@main.command("instance-set")
@click.argument("service")
@click.argument("address")
@click.option("--enabled", type=click.BOOL, default=None, help="false drains the instance.")
@click.option("--weight", type=float, default=None)
@click.option(
    "--clear",
    is_flag=True,
    default=False,
    help="Drop the operator's override: the provider's own weight and enabled apply again.",
)
@click.option("--cluster", default=DEFAULT_CLUSTER, show_default=True)
@client_options
def instance_set(
    service: str,
    address: str,
    enabled: bool | None,
    weight: float | None,
    clear: bool,
    cluster: str,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Override an instance's weight or enabled flag (operators draining an instance).

    The override is kept over the provider's own values: the provider registering
    again does not undo it; --clear does (README, "Draining")."""
    host, port = _host_port(address)
    if not port:
        raise click.BadParameter("ADDRESS must be host:port")
    if clear and (enabled is not None or weight is not None):
        raise click.UsageError("--clear drops the override: give it without --enabled/--weight")
    if enabled is None and weight is None and not clear:
        raise click.UsageError("give --enabled and/or --weight, or --clear")
    with _client(servers, namespace, group, timeout) as c:
        c.set_instance(
            service, host, port, cluster=cluster, weight=weight, enabled=enabled, clear=clear
        )
        click.echo(f"{'cleared' if clear else 'updated'} {service} {address}")


@main.command()
@click.argument("service")
@click.option("--cluster", "clusters", multiple=True, help="Only this cluster's; repeatable.")
@click.option("--meta", multiple=True, help="k=v: only instances with it; repeatable.")
@click.option(
    "--cache-dir",
    default=None,
    envvar="MESHREG_CACHE_DIR",
    help="Disk cache directory: serves the last known list when no node answers.",
)
@client_options
def select(
    service: str,
    clusters: tuple[str, ...],
    meta: tuple[str, ...],
    cache_dir: str | None,
    servers: str,
    namespace: str,
    group: str,
    timeout: float,
) -> None:
    """Print one healthy instance of SERVICE (host:port), chosen at random by weight."""
    if cache_dir:  # say on stderr when the answer comes from the disk copy
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("meshreg: %(message)s"))
        handler.setLevel(logging.WARNING)
        logging.getLogger("meshreg.client").addHandler(handler)
    with _client(servers, namespace, group, timeout, cache_dir=cache_dir) as c:
        chosen = c.select(service, cluster=clusters or None, metadata=_parse_meta(meta))
        click.echo(_safe(chosen.address))


@main.command()
@click.option("--json", "as_json", is_flag=True)
@client_options
def services(as_json: bool, servers: str, namespace: str, group: str, timeout: float) -> None:
    """List the services of a namespace and group."""
    with _client(servers, namespace, group, timeout) as c:
        names = c.services()
        others = {} if names else c.services_by_group()
    if as_json:
        click.echo(json.dumps(names))
    else:
        for name in names:
            click.echo(_safe(name))
    if not names:  # an empty stdout alone reads like a failure (review33 F3)
        where = f"namespace {_safe(namespace)}"
        if others:
            groups = ", ".join(f"{_safe(g)} ({len(s)})" for g, s in sorted(others.items()))
            click.echo(f"no service with instances in {where}, group {_safe(group)}; "
                       f"other groups hold some: {groups} (use -g GROUP)", err=True)  # fmt: skip
        else:
            click.echo(f"no service with instances in {where} (any group)", err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON array of objects.")
@server_option
@timeout_option
@security_options
def namespaces(as_json: bool, servers: str, timeout: float) -> None:
    """List every namespace holding services or configs, with their counts (a backup
    script exports each: `meshreg config export -n NS`)."""
    with _client(servers, DEFAULT_NAMESPACE, DEFAULT_GROUP, timeout) as c:
        found = c.namespaces()
    if as_json:
        click.echo(json.dumps([vars(n) for n in found]))
        return
    if not found:
        click.echo("no namespace holds a service or a config", err=True)
    for n in found:
        click.echo(f"{_safe(n.namespace)}\t{n.services} service(s)\t{n.configs} config(s)")


@main.command()
@click.argument("service")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change.")
@client_options
def watch(
    service: str, as_json: bool, servers: str, namespace: str, group: str, timeout: float
) -> None:
    """Print SERVICE's instances now and on every change until interrupted."""
    out_lock = threading.Lock()

    def changed(found: list[Instance]) -> None:
        with out_lock:
            if as_json:
                line = {
                    "service": service,
                    "revision": getattr(found, "revision", 0),
                    "epoch": getattr(found, "epoch", None),
                    "service_metadata": getattr(found, "service_metadata", {}),
                    "instances": [_instance_json(i) for i in found],
                }
                click.echo(json.dumps(line))
            else:  # one line per change
                healthy = sum(1 for i in found if i.healthy)
                listed = ", ".join(
                    _safe(i.address)
                    + ("" if i.healthy else " (unhealthy)")
                    + ("" if i.enabled else " (disabled)")
                    for i in found
                )
                click.echo(
                    f"{_safe(service)} rev {getattr(found, 'revision', 0)}: {len(found)} "
                    "instance(s), "
                    f"{healthy} healthy" + (f": {listed}" if listed else "")
                )
            sys.stdout.flush()

    _warnings_to_stderr()
    with _client(servers, namespace, group, timeout, fail_when_refused=False) as c:  # long-lived
        _kept_or_raise("watch", lambda: c.subscribe(service, changed))
        _wait_for_signal()


def _kept_or_raise(command: str, listen: Callable[[], object]) -> None:
    """A watch started while no node answers keeps waiting (its listener is kept, said on
    stderr) as ``etcdctl watch`` does; any other error stops it."""
    try:
        listen()
    except MeshregError as exc:
        if not exc.listener_kept:
            raise
        click.echo(f"meshreg {command}: {_unkept(exc)}; waiting (Ctrl-C stops)", err=True)


def _unkept(exc: BaseException) -> str:
    """``exc``'s text without what it tells a program that keeps its listener or its
    registration (the Python calls that drop them mean nothing to a CLI user)."""
    text = str(exc)
    for note in ("; the listener is kept: ", "; the registration is kept: "):
        text = text.split(note)[0]
    return text


def _check_directory(path: str) -> str:
    """The directory ``path`` goes in; fail if it does not exist (review82 F8: the error
    named the temporary file written beside ``path``)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        _fail(f"cannot write {path}: the directory {directory} does not exist; create it first")
    return directory


def _write_atomically(path: str, text: str) -> None:
    """``text`` to ``path`` by a temporary file in its directory renamed over it."""
    import tempfile

    directory = _check_directory(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)  # node_exporter runs as another user
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        _fail(f"cannot write {path}: {exc}")


def _emit(text: str, output_file: str | None) -> None:
    if output_file is None:
        click.echo(text, nl=False)
    else:
        _write_atomically(output_file, text)


def _renewal_rate(result: dict[str, Any]) -> str:
    """`` (session renewals/s R)``: providers on sessions renew instead of beating, so a
    node whose providers are all alive can show 0 beats/s (review24)."""
    sessions = result.get("sessions")
    rate = sessions.get("renewals_per_second") if isinstance(sessions, dict) else None
    return f" (session renewals/s {rate})" if isinstance(rate, int | float) else ""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="The stats reply as one JSON document.")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json", "prometheus"]),
    default="text",
    show_default=True,
    help="prometheus: Prometheus text exposition (node_exporter's textfile collector; "
    "README Monitoring).",
)
@click.option(
    "--output",
    "output_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write to this file (a temporary file renamed over it: a textfile collector "
    "never reads half of it) instead of stdout; with --format prometheus, a node that "
    "does not answer gets meshreg_up 0 there (and exit 1).",
)
@server_option
@timeout_option
@security_options
def stats(
    as_json: bool, output: str, output_file: str | None, servers: str, timeout: float
) -> None:
    """Show a node's counters."""
    ctx = click.get_current_context()
    given = ctx.get_parameter_source("output") is not click.core.ParameterSource.DEFAULT
    if as_json and output != "json" and (output != "text" or given):  # (review82 F8)
        raise click.UsageError(f"--json and --format {output} ask for two formats: give one")
    if as_json:
        output = "json"
    if output_file is not None and output == "text":  # a usage error: exit 2 (review61 F6)
        raise click.UsageError("--output goes with --format json or prometheus")
    if output_file is not None:  # said before the node is asked (one error, not two)
        _check_directory(output_file)
    refused: ServerError | None = None  # the node answered with an error: it is up
    try:
        with _client(servers, DEFAULT_NAMESPACE, DEFAULT_GROUP, timeout) as c:
            try:
                result = c.stats()
            except ServerError as exc:
                refused = exc
                raise
            view = None
            if output == "prometheus":  # per-member lag and state: without them if refused
                try:
                    view = c.cluster()
                except ServerError as exc:
                    click.echo(f"meshreg: the cluster view was refused ({_safe(exc)}): "
                               "written without the per-member metrics", err=True)  # fmt: skip
    except SystemExit:
        if output_file is not None and output == "prometheus":
            from meshreg.metrics import prometheus_down, prometheus_refused

            node = servers.split(",")[0].strip()
            if refused is not None:
                text = prometheus_refused(node, refused.code_name)
            else:
                text = prometheus_down(node)
            _write_atomically(output_file, text)
        raise
    if output == "prometheus":
        from meshreg.metrics import prometheus_text

        _emit(prometheus_text(result, view), output_file)
        return
    if output == "json":
        _emit(json.dumps(result, sort_keys=True) + "\n", output_file)
        return
    result = _safe_tree(result)
    inst = result["instances"]
    lines = [
        f"node            {result['address']} (meshreg {result['version']}, "
        f"epoch {result['epoch']})",
        f"uptime          {result['uptime']:.1f} s",
        f"services        {result['services']}",
        f"instances       {inst['total']} "
        f"({inst['healthy']} healthy, {inst['unhealthy']} unhealthy)",
        f"beats/s         {result['beats_per_second']}{_renewal_rate(result)}",
        f"subscribers     {result['subscribers']}",
        f"errors          {result['errors_total']} {json.dumps(result['errors'])}",
        f"requests        {json.dumps(result['requests'], sort_keys=True)}",
    ]
    process = result.get("process")
    if isinstance(process, dict):  # (older nodes: none)
        limit = process.get("max_fds") or "no limit"
        lines.append(
            f"process         {process.get('resident_bytes', 0) / 2**20:.0f} MB resident, "
            f"{process.get('cpu_seconds')} s CPU, {process.get('open_fds')} descriptors open "
            f"(limit {limit}), {process.get('threads')} threads; memory given back "
            f"{result.get('memory_releases', 0)} times"
        )
    usage = result.get("usage")
    if isinstance(usage, dict):
        lines.append(
            f"usage           {usage.get('namespaces')} namespaces, {usage.get('services')} "
            f"services ({usage.get('empty_services')} with settings only), "
            f"{usage.get('metadata_bytes')} metadata bytes, {usage.get('tombstones')} tombstones, "
            f"{usage.get('overrides', 0)} operator overrides; "
            f"quota refusals {json.dumps(result.get('rejected_quota', {}), sort_keys=True)}"
        )
    if "security" in result:
        lines.append(
            f"security        {result['security']}; denied {result.get('permission_denied', 0)}, "
            f"handshakes refused {result.get('handshakes_refused', 0)}, unfinished "
            f"{result.get('handshakes_unfinished', 0)}, peer handshakes failed "
            f"{result.get('peer_handshakes_failed', 0)}, reads throttled "
            f"{result.get('reads_throttled', 0)}, writes throttled "
            f"{result.get('writes_throttled', 0)}, client quota refusals "
            f"{result.get('client_quota_refused', 0)}"
        )
    sessions = result.get("sessions")
    if isinstance(sessions, dict):
        refused = result.get("rejected_quota", {})
        full = refused.get("max_sessions", 0) if isinstance(refused, dict) else 0
        share = refused.get("max_sessions_per_client", 0) if isinstance(refused, dict) else 0
        lines.append(
            f"sessions        {sessions.get('count')} holding {sessions.get('instances')} "
            f"instances; {sessions.get('renewals')} renewals, {sessions.get('silent')} silent "
            f"at the last check, {sessions.get('forgotten', 0)} forgotten empty; refused: "
            f"{full} table full, {share} over a client's share"
        )
    configs = result.get("config")
    if isinstance(configs, dict):
        learner = ""
        if configs.get("learner_of"):  # its configured peers' lists lack it (CONFIG.md)
            learner = (
                f"; LEARNER of {configs.get('learner_of')} members whose lists do not name "
                "this node (not counted in majorities; forwards its config writes)"
            )
        elif configs.get("learners"):
            learner = f"; {configs.get('learners')} learners (members this list does not name)"
        lines.append(
            f"configs         {configs.get('configs')} data ids "
            f"({configs.get('tombstones')} deleted), {configs.get('history_entries')} "
            f"versions kept, {'ready' if configs.get('ready') else 'catching up'}; majority "
            f"{configs.get('majority')} of {configs.get('members')} "
            f"({configs.get('members_up')} up){learner}; listens {configs.get('listens')}, "
            f"conflicts {configs.get('conflicts')}, refused (minority) "
            f"{configs.get('refused_minority')}, timed out {configs.get('timed_out')}; "
            f"data dir {configs.get('data_dir')}"
        )
        by_ns = configs.get("configs_by_namespace")
        limits = configs.get("limits")
        if isinstance(by_ns, dict) and isinstance(limits, dict):
            largest = ", ".join(f"{ns} {n}" for ns, n in by_ns.items()) or "none"
            lines.append(
                f"config quotas   {configs.get('namespaces')} namespaces, the largest: "
                f"{largest} (live data ids; limit {limits.get('max_configs_per_namespace')} "
                f"per namespace, 0: none; {limits.get('max_configs')} per node); deleted "
                f"kept {configs.get('tombstones')} of {limits.get('max_tombstones')} "
                f"({configs.get('tombstones_purged_early')} purged early)"
            )
        if configs.get("commit_failing"):
            lines.append(
                f"CONFIG DISK     saving fails ({configs.get('commit_error')}; "
                f"{configs.get('commit_failures_in_a_row')} attempts in a row): config writes "
                f"refused ({configs.get('refused_disk')} so far) until a save works"
            )
    members = result.get("members")
    if isinstance(members, list) and len(members) > 1:
        lines.append(
            f"cluster         {len(members)} members, "
            f"{'ready' if result.get('ready') else 'catching up'}; forwarded "
            f"{result.get('forwarded', 0)}, replication in/out {result.get('replication_in', 0)}"
            f"/{result.get('replication_out', 0)}, snapshot pulls "
            f"{result.get('snapshot_pulls', 0)}, digest mismatches "
            f"{result.get('digest_mismatches', 0)}"
        )
    judgment = result.get("health_judgment")
    if judgment is not None:
        in_grace = result.get("judged_in_stall_grace", 0)
        in_run = result.get("judged_in_member_grace", 0)
        judged = f" ({in_grace} instances judged in their grace)" if in_grace else ""
        if in_run:
            judged += f" ({in_run} judged in a run of member graces: a peer flapping?)"
        lines.append(
            f"health checks   {judgment}; stalls {result.get('stalls', 0)}{judged}, "
            f"disputed views {result.get('disputed_views', 0)}"
        )
    preservation = result.get("self_preservation")
    if isinstance(preservation, dict) and preservation.get("active"):
        lines.append(
            f"SELF-PRESERVATION active: {preservation.get('silent')} of "
            f"{preservation.get('of')} instances silent; evictions paused"
        )
    click.echo("\n".join(lines))


@main.command()
@click.option("--json", "as_json", is_flag=True)
@server_option
@timeout_option
@security_options
def cluster(as_json: bool, servers: str, timeout: float) -> None:
    """Show the cluster as one node sees it: members, state, responsibility, lag."""
    with _client(servers, DEFAULT_NAMESPACE, DEFAULT_GROUP, timeout) as c:
        result = c.cluster()
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    result = _safe_tree(result)
    own = next((m for m in result["members"] if m.get("self")), {})
    ready = "ready" if result["ready"] else str(own.get("state") or "catching up")
    click.echo(f"as seen from {result['node']} ({ready})")
    click.echo(
        f"{'id':<22} {'address':<22} {'state':<12} {'services':>8} {'instances':>9} {'lag':>5}"
    )
    joined = False
    skewed: list[str] = []
    deaf: list[str] = []
    renamed = False
    counted = result.get("counts") is not False  # false: the key may not read everything
    for m in result["members"]:
        mark = "*" if m["self"] else " "
        if m.get("configured") is False:  # absent: a node older than joins
            mark, joined = "+", True
        offset = m.get("clock_offset")
        clock = ""
        if isinstance(offset, (int, float)) and abs(offset) >= 1.0:
            clock = f"  clock {offset:+.1f}s"
            skewed.append(m["address"])
        silent = m.get("stream_silent")
        if isinstance(silent, (int, float)):
            clock += f"  stream silent {silent:.0f}s"
            deaf.append(m["address"])
        announced = m.get("announced")
        if isinstance(announced, str) and announced and announced != m["address"]:
            clock += f"  announces {announced}"
            renamed = True
        name = m["id"] or "(never heard)"  # "" on the wire: its id is not known yet
        services, instances = (m["services"], m["instances"]) if counted else ("-", "-")
        click.echo(
            f"{mark}{name:<21} {m['address']:<22} {m['state']:<12} "
            f"{services:>8} {instances:>9} {m['lag']:>5}{clock}"
        )
    if not counted:
        click.echo(
            "services, instances: shown only to a key that may read everything, or whose ACL "
            "entry says stats = true (they count every namespace's; docs/SECURITY.md)"
        )
    if joined:
        click.echo(
            "+ not in this node's peer list: it lists this node and introduced itself; kept "
            "while it does. Give every node the same list (--peer / [cluster] peers)."
        )
    if renamed:
        click.echo(
            "announces: the address that member gives for itself (its --advertise, else its "
            "--host), not this node's spelling of it in the peer list; config data ids are "
            "mapped to members by it (docs/PROTOCOL.md 2.15)"
        )
    if skewed:
        click.echo(
            "clock: that member's wall clock minus this node's (a beacon's delay included); "
            'past 30 s one of them is counted out (docs/DISTRO.md "Clock skew"): fix NTP'
        )
    if deaf:
        click.echo(
            "stream silent: nothing heard on that member's replication port (P+2) while its "
            "beacons arrive by request: its changes reach this node by repair only. Open "
            f"port P+2 of {', '.join(deaf)} towards this node (a firewall rule?)"
        )
    configs = result.get("config")
    if isinstance(configs, dict):
        refusal = configs.get("disk_refusal") or _minority(configs)
        state = "ready" if configs.get("ready") else "catching up (config reads refused)"
        if configs.get("forced_ready"):
            state = "ready (FORCED by the operator, not caught up from a majority)"
        store = configs.get("store")
        if store in ("fresh", "joining"):  # a store that started empty (review42 F1)
            state += "; its store started empty and counts only peers whose stores are whole" + (
                " (it joins an existing cluster: --config-join-existing)"
                if store == "joining"
                else ""
            )
        if configs.get("waiting"):  # it will not be ready by itself (review43 F2)
            state += f"; it stays so: {_safe(configs['waiting'])}"
        click.echo(f"configs: {state}" + (f"; WRITES REFUSED: {refusal}" if refusal else ""))


def _minority(counts: dict[str, Any]) -> str | None:
    """Why config writes are refused for want of a majority (None: they are not, or the
    node does not say), from ``members_up`` and ``members`` (and ``majority``)."""
    up, members = counts.get("members_up"), counts.get("members")
    if not isinstance(up, int) or not isinstance(members, int) or members < 1:
        return None
    majority = counts.get("majority")
    need = majority if isinstance(majority, int) else members // 2 + 1
    if up >= need:
        return None
    return (
        f"this node sees {up} of its {members} configured members up and a config write "
        f"needs {need} (registry reads and writes go on)"
    )


OLDER_NODE = (
    "an older version: its ping does not say whether it has caught up, its `cluster` "
    "view says so; whether its peers count it in, `meshreg cluster` on a peer shows"
)


def _readiness(result: dict[str, Any]) -> str | None:
    """What a ``ping`` reply says is not ready yet (None: ready).  A node too old to say
    (no ``ready`` in its reply) is not taken for ready: ``ping`` asks its ``cluster`` view
    first (review41 F2: a node rolled back to an older version was called ready while its
    peers held it out, and nothing said it was older)."""
    if "ready" not in result:
        return OLDER_NODE
    waiting = []
    held_by = result.get("held_by")
    if result.get("ready") is False and held_by:
        waiting.append(
            f"registry caught up, but held out of the members by {', '.join(held_by)}: it "
            "restarted again and again, which they take for a crash loop; it is counted in "
            "again by itself within evict_after + unhealthy_after (45 s at the defaults) "
            "of its last start (docs/DISTRO.md, 'A node that keeps restarting')"
        )
    elif result.get("ready") is False and result.get("resyncing"):
        waiting.append(
            "registry resyncing: back from a stall its peers noticed (stopped longer than "
            "peer_timeout), it refuses registry reads until a round with each peer"
        )
    elif result.get("ready") is False:
        waiting.append("registry catching up from its peers")
    if result.get("config_ready") is False:
        # the node's reason when the wait does not end by itself (review43 F2)
        waiting.append(
            _safe(str(result["config_waiting"]))
            if result.get("config_waiting")
            else "configs catching up from a majority of the configured members"
        )
    return "; ".join(waiting) or None


@main.command()
@click.option(
    "--ready",
    "need_ready",
    is_flag=True,
    help="Exit 1 unless the node has caught up (registry and configs): a readiness check "
    "for rolling restarts.",
)
@server_option
@timeout_option
@security_options
def ping(need_ready: bool, servers: str, timeout: float) -> None:
    """Check that a node answers (and, with --ready, that it has caught up); with
    several servers, each of them (exit 1 if one fails)."""
    listed = list(dict.fromkeys(s.strip() for s in servers.split(",") if s.strip()))
    if len(listed) <= 1:
        _ping_one(need_ready, servers, timeout)
        return
    # each listed node on its own (etcdctl endpoint health --endpoints a,b,c): asked as a
    # list, the client asked whichever answered, so a probe passed with a node down
    # (review82 F2)
    failed = []
    for server in listed:
        try:
            _ping_one(need_ready, server, timeout)
        except SystemExit as exc:
            if exc.code not in (0, None):
                failed.append(server)
    if failed:
        click.echo(
            f"meshreg: {len(failed)} of {len(listed)} nodes failed the check: {', '.join(failed)}",
            err=True,
        )
        sys.exit(1)


def _ping_one(need_ready: bool, servers: str, timeout: float) -> None:
    """``ping`` of the node ``servers`` names (one)."""
    with _client(servers, DEFAULT_NAMESPACE, DEFAULT_GROUP, timeout) as c:
        result = c.ping()
        server = c.server
        older = "ready" not in result  # an older node: its cluster view says (review41 F2)
        if older:
            result = {**result, "ready": c.cluster().get("ready") is True}
    waiting = _readiness(result)
    state = f"not ready: {waiting}" if waiting else "ready"
    if older:
        state += f" ({OLDER_NODE})"
    minority = _minority(result) if result.get("config_ready") is not None else None
    if minority:  # ready means caught up; say that writes wait for members all the same
        state += f"; config writes refused: {minority}"
    disk = result.get("config_writes_refused")
    if disk:  # ready (it serves reads) while its disk fails: an operations review
        state += f"; CONFIG WRITES REFUSED: {_safe(str(disk))}"
    click.echo(
        f"pong from {server} (meshreg {_safe(result['version'])}, epoch {result['epoch']}): {state}"
    )
    if need_ready and waiting:
        hint = (
            "`meshreg cluster` on a peer shows it `held out`"
            if result.get("held_by")
            else "`meshreg cluster` shows which peers it waits for"
        )
        if result.get("config_waiting"):  # it will not be ready by itself (review43 F2)
            click.echo(f"meshreg: {server} is not ready ({waiting}); it stays so until then",
                       err=True)  # fmt: skip
        else:
            click.echo(
                f"meshreg: {server} is not ready yet ({waiting}); try again in a moment ({hint})",
                err=True,
            )
        sys.exit(1)


@main.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Replace NAME.key and NAME.pub if they exist.")
def keygen(name: str, force: bool) -> None:
    """Write a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public)."""
    from meshreg.security.keys import generate_key_files, load_public_key

    try:
        key_path, pub_path = generate_key_files(name, force=force)
        public = load_public_key(pub_path).decode("ascii")
    except ConfigError as exc:
        _fail(str(exc))
    click.echo(f"secret key: {key_path} (mode 0600)")
    click.echo(f"public key: {pub_path}")
    click.echo(f"public key (z85): {public}")
    click.echo(
        f"Keep {key_path} secret: whoever has it acts as this key. Give {pub_path} (or the "
        "public key above) to whoever must trust it: a node's ACL for a client key, "
        "every client's --server-key for the cluster key."
    )


if __name__ == "__main__":  # pragma: no cover
    # ``python -m meshreg.cli``: the sub-command modules below import ``meshreg.cli``, a
    # second copy of this one; run that copy, whole, instead of this half-built one.
    from meshreg.cli import main as _importable_main

    _importable_main()

from meshreg.cli_config import config as _config_commands  # noqa: E402 (needs the above)

main.add_command(_config_commands)
from meshreg.cli_snapshot import snapshot as _snapshot_commands  # noqa: E402

main.add_command(_snapshot_commands)
