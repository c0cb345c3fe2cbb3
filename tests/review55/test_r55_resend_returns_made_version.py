"""review55 F2: a re-sent ``config_publish`` answers with content the cluster never made,
and keeps it on disk.

``config_publish(data_id, "second", request_id=R)`` after ``config_publish(data_id,
"first", request_id=R)`` took effect: the node answers with the version R made (revision
1, md5 of "first"; the publish asks ``echo: false``, so without its content), and the
client fills in the content *it sent*: the returned ``ConfigInfo`` says content "second"
with the md5 of "first", and with ``cache_dir`` that is the copy written to disk, which a
later outage serves (``from_cache``) as revision 1 although no node ever held "second".

config_api.py ``config_publish``: "request_id: ... the same to re-send a write whose
outcome was unknown: the cluster applies one id at most once and answers with the version
it made"; docs/CONFIG.md (Client and CLI, Writes): "A re-send of a write that took effect
answers its original version (the same revision ...)".
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from meshreg import Client
from meshreg.errors import InvalidArgumentError


@pytest.mark.timeout(60)
def test_a_resent_publish_returns_the_version_the_cluster_made(
    start_node: Any, tmp_path: Path
) -> None:
    node = start_node()
    cache = tmp_path / "cache"
    rid = "r55-resend-0123456789"
    client = Client([node.address], cache_dir=str(cache), handle_sigterm=False)
    try:
        first = client.config_publish("r55.resend", "first", request_id=rid)
        # since 2026-12-07 an id re-used for other content is refused (it was answered
        # with the first write's version, and this client then filled in "second")
        with pytest.raises(InvalidArgumentError, match="with other content"):
            client.config_publish("r55.resend", "second", request_id=rid)
        again = client.config_publish("r55.resend", "first", request_id=rid)  # a re-send
    finally:
        client.close()
    assert again.revision == first.revision  # the cluster applied R once
    assert again.md5 == hashlib.md5(b"first").hexdigest()  # and answered its version
    assert again.content == "first", (
        f"the re-send returned content {again.content!r} with the md5 of 'first' "
        f"({again.md5}) at revision {again.revision}: a version the cluster never made"
    )
    node.stop()  # an outage: the disk copy is what a new process gets
    offline = Client([node.address], cache_dir=str(cache), timeout=2.0, handle_sigterm=False)
    try:
        copy = offline.config_get("r55.resend")
    finally:
        offline.close(timeout=0.5)
    assert copy is not None and copy.from_cache
    assert copy.content == "first", (
        f"the disk copy served in an outage holds {copy.content!r} at revision "
        f"{copy.revision}; the cluster's revision {copy.revision} is 'first'"
    )


@pytest.mark.timeout(60)
def test_a_resent_gray_returns_the_gray_version_the_cluster_made(start_node: Any) -> None:
    """The same with ``config_gray`` (its ``gray.content`` is filled in the same way)."""
    node = start_node()
    rid = "r55-gray-resend-0123456789"
    client = Client([node.address], handle_sigterm=False)
    try:
        client.config_publish("r55.gray", "main")
        first = client.config_gray("r55.gray", "g-first", labels={"env": "x"}, request_id=rid)
        again = client.config_gray("r55.gray", "g-second", labels={"env": "x"}, request_id=rid)
    finally:
        client.close()
    assert first.gray is not None and again.gray is not None
    assert again.revision == first.revision
    assert again.gray.md5 == hashlib.md5(b"g-first").hexdigest()
    assert again.gray.content == "g-first", (
        f"the re-sent gray write returned gray content {again.gray.content!r} with the md5 "
        f"of 'g-first' at revision {again.revision}: a version the cluster never made"
    )
