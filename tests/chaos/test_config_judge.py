"""The config scenarios' judge on made-up logs and dumps (no namespaces: runs everywhere).

Shows every check can fail: an acknowledged version missing or beaten at its revision,
nodes that disagree, a refused write that appeared, a reader that went backwards.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import scenarios  # noqa: I001, F401  (first: it imports config_scenarios at its end)
from config_scenarios import DATA_IDS, ConfigLoad


def _load(tmp_path: Path) -> ConfigLoad:
    run = SimpleNamespace(workdir=tmp_path, s=SimpleNamespace(nodes=3), name=lambda j: f"n{j + 1}")
    load = ConfigLoad(run)  # type: ignore[arg-type]
    load.records = [
        [
            {"k": "ack", "t0": 1.0, "t1": 1.1, "id": DATA_IDS[0], "rev": 1, "md5": "a1"},
            {"k": "read", "t0": 1.2, "t1": 1.3, "id": DATA_IDS[0], "rev": 1},
        ],
        [
            {"k": "ack", "t0": 1.5, "t1": 1.6, "id": DATA_IDS[0], "rev": 2, "md5": "b2"},
            {"k": "err", "t0": 2.0, "t1": 2.1, "id": DATA_IDS[1], "md5": "zz", "kind": "nothing"},
            # slow: an earlier attempt may have landed, so it is not judged
            {"k": "err", "t0": 3.0, "t1": 6.0, "id": DATA_IDS[1], "md5": "yy", "kind": "nothing"},
        ],
        [],
    ]
    return load


def _dumps() -> list[dict[str, Any]]:
    one: dict[str, Any] = {d: {"cur": None, "hist": []} for d in DATA_IDS}
    one[DATA_IDS[0]] = {"cur": [2, "b2"], "hist": [[2, "b2", "x", False], [1, "a1", "x", False]]}
    one[DATA_IDS[1]] = {"cur": [1, "yy"], "hist": [[1, "yy", "x", False]]}
    return [dict(one) for _ in range(3)]


def _kinds(load: ConfigLoad, dumps: list[dict[str, Any]]) -> list[str]:
    return sorted({v.kind for v in load.judge(dumps)})


def test_consistent_cluster_passes(tmp_path: Path) -> None:
    assert _kinds(_load(tmp_path), _dumps()) == []


def test_each_check_can_fail(tmp_path: Path) -> None:
    load = _load(tmp_path)
    dumps = _dumps()
    dumps[1] = dict(dumps[1])
    dumps[1][DATA_IDS[0]] = {"cur": [2, "b2"], "hist": [[2, "b2", "x", False]]}
    assert _kinds(load, dumps) == ["ack-missing"]
    dumps[1][DATA_IDS[0]] = {
        "cur": [2, "b2"],
        "hist": [[2, "b2", "x", False], [1, "c1", "y", False], [1, "a1", "x", False]],
    }
    assert _kinds(load, dumps) == ["ack-lost-revision"]
    dumps = _dumps()
    dumps[2] = dict(dumps[2])
    dumps[2][DATA_IDS[1]] = {"cur": [2, "zz"], "hist": [[2, "zz", "y", False]]}
    assert _kinds(load, dumps) == ["diverged", "refused-appeared"]
    load.records[0].append({"k": "read", "t0": 4.0, "t1": 4.1, "id": DATA_IDS[0], "rev": 0})
    assert _kinds(load, _dumps()) == ["read-backwards"]


def test_a_read_of_a_data_id_not_written_yet_is_not_backwards(tmp_path: Path) -> None:
    """A writer whose first write of a data id was refused reads it back absent (-1)."""
    load = _load(tmp_path)
    absent = {"k": "read", "t0": 0.5, "t1": 0.6, "id": DATA_IDS[0], "rev": -1}
    load.records[2].append(absent)
    assert _kinds(load, _dumps()) == []
    load.records[2].append({**absent, "t0": 7.0, "t1": 7.1})
    load.records[2].insert(1, {"k": "read", "t0": 5.0, "t1": 5.1, "id": DATA_IDS[0], "rev": 2})
    assert _kinds(load, _dumps()) == ["read-backwards"]  # gone after it was seen
