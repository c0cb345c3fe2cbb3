"""What the client's sans-IO session asks its I/O loop to do: typed actions.

Every input of ``ClientSession`` returns a list of these; ``ClientAgent._perform``
carries them out in order with one exhaustive ``match``.  ``DirectSend`` is the
loop's report on a ``SendRequest`` to a member (``ClientSession.direct_send_result``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from meshreg.client.commands import Listener, ReplyTo
from meshreg.client.configs import ConfigInfo, ConfigListener
from meshreg.configcenter.model import ConfigKey
from meshreg.model import InstanceList, ServiceKey


@dataclass(frozen=True)
class ConnectServer:
    """Use this server: a new request connection; notifications from its PUB port (and
    no longer from the previous server's: it would deliver everything twice)."""

    host: str
    port: int
    # the number of the connection this one replaces when calls wait on whether it
    # completed a handshake not reported yet: close it first and tell the session
    # (``previous_connection_closed``); None: nothing waits on that
    settle: int | None = None


@dataclass(frozen=True, slots=True)
class SendRequest:
    request_id: int
    body: bytes
    via: str | None  # a member's address to send it straight to; None: the server.
    # A send via a member must be answered with ``direct_send_result``.


class DirectSend(enum.Enum):
    """What became of a request the loop was to send straight to a member."""

    SENT = "sent"
    NOT_CONNECTED = "not connected"  # no connection (yet): nothing was sent
    UNUSABLE = "unusable"  # the address cannot be used (unresolvable, refused)


@dataclass(frozen=True)
class WatchTopic:
    key: ServiceKey


@dataclass(frozen=True)
class UnwatchTopic:
    key: ServiceKey


@dataclass(frozen=True)
class CallListener:
    listener: Listener
    listing: InstanceList


@dataclass(frozen=True)
class SaveToDisk:
    key: ServiceKey
    listing: InstanceList


@dataclass(frozen=True)
class Complete:
    reply_to: ReplyTo
    result: Any


@dataclass(frozen=True)
class Fail:
    reply_to: ReplyTo
    error: BaseException


@dataclass(frozen=True)
class LogLine:
    level: str  # "debug", "info", "warning" or "error"
    text: str


@dataclass(frozen=True)
class CallConfigListener:
    """``listener(content, revision)``; content None: the data id is absent or deleted."""

    listener: ConfigListener
    content: str | None
    revision: int


@dataclass(frozen=True)
class SaveConfig:
    """Keep ``entry`` in the disk cache (None: remove the data id's copy: deleted)."""

    key: ConfigKey
    entry: ConfigInfo | None


@dataclass(frozen=True)
class WatchConfigTopic:
    key: ConfigKey


@dataclass(frozen=True)
class UnwatchConfigTopic:
    key: ConfigKey


Action = (
    ConnectServer
    | SendRequest
    | WatchTopic
    | UnwatchTopic
    | CallListener
    | SaveToDisk
    | Complete
    | Fail
    | LogLine
    | CallConfigListener
    | SaveConfig
    | WatchConfigTopic
    | UnwatchConfigTopic
)
