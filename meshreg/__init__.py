"""meshreg: a service registry on a ZeroMQ peer mesh (Nacos Distro-style, AP)."""

__version__ = "0.1.0"

from meshreg.client.client import Client  # noqa: E402
from meshreg.errors import (  # noqa: E402
    CallFailedError,
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

__all__ = [
    "CallFailedError",
    "Client",
    "Instance",
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
