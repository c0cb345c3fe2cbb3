"""The Python client: a pure cache and the user-facing Client."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshreg.client.client import Client

__all__ = ["Client"]


def __getattr__(name: str) -> Any:
    """``Client`` on first use (PEP 562): importing a light module of this package
    (``meshreg.client.defaults``, the CLI's option defaults) does not load the client."""
    if name == "Client":
        from meshreg.client.client import Client

        globals()["Client"] = Client  # found directly from now on
        return Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "Client"})  # as before: Client listed before its first use
