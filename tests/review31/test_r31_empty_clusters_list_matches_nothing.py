"""review31: ``clusters=[]`` (an empty list, as Nacos callers pass when no cluster is
picked) filters every instance out, and ``select(cluster=[])`` raises
NoInstanceAvailableError naming 'clusters ' with no name.

README "Filters": "narrow the list to one cluster or several (... as Nacos's
``selectInstances(service, clusters, healthy)``)"; in Nacos an empty ``clusters`` list
means every cluster (it is joined to "" = no cluster filter).  selection.py
``cluster_set([])`` gives ``frozenset()``, not None, so ``where``/``eligible`` keep none.
The CLI hides it (``clusters or None``); the library does not."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import NodeProcess  # noqa: E402

from meshreg import Client  # noqa: E402


@pytest.mark.timeout(60)
def test_empty_clusters_list_means_any_cluster() -> None:
    node = NodeProcess().start()
    c = Client(servers=[node.address], sessions=False, handle_sigterm=False)
    try:
        c.register("r31-pay", "127.0.0.1", 9001)
        assert len(c.instances("r31-pay")) == 1
        got = c.instances("r31-pay", clusters=[])
        assert len(got) == 1, f"clusters=[] (no cluster picked) kept {len(got)} of 1 instance"
        assert c.select("r31-pay", cluster=[]).port == 9001
    finally:
        c.close()
        node.cleanup()
