"""The Python client: a pure cache and the user-facing Client."""

from meshreg.client.client import Client

__all__ = ["Client"]
