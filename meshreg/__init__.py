"""meshreg: a service registry on a ZeroMQ peer mesh (Nacos Distro-style, AP)."""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from meshreg.errors import (  # noqa: E402
    CallFailedError,
    ConflictError,
    InvalidArgumentError,
    MeshregError,
    NoInstanceAvailableError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    ResourceExhaustedError,
    ServerError,
    ServerUnreachableError,
)
from meshreg.model import Instance, ServiceKey  # noqa: E402

if TYPE_CHECKING:
    from meshreg.client.client import Client


def __getattr__(name: str) -> Any:
    """``meshreg.Client`` on first use (PEP 562), not at ``import meshreg``: every module
    of the package imports this one first, and a node, ``meshreg --help`` or a script
    using ``meshreg.errors`` alone should not load the client (bench/startup.py)."""
    if name == "Client":
        from meshreg.client.client import Client

        globals()["Client"] = Client  # found directly from now on
        return Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "Client"})  # as before: Client listed before its first use


__all__ = [
    "CallFailedError",
    "Client",
    "ConflictError",
    "Instance",
    "InvalidArgumentError",
    "MeshregError",
    "NoInstanceAvailableError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "ServerError",
    "ServerUnreachableError",
    "ServiceKey",
    "__version__",
]
