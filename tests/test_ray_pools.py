"""Pool planning: never claim every CPU; cheap stages share an actor."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from curate.runners.ray import CPU_BUDGET, group_stages, plan_pools
from curate.stage import Stage


@dataclass
class S(Stage):
    label: str = ""


def _stages(*cpus: float) -> list[S]:
    return [S(cpus=c, label=str(i)) for i, c in enumerate(cpus)]


@pytest.mark.parametrize("total", [1.0, 2.0, 4.0, 16.0])
def test_pools_leave_headroom(total: float):
    stages = _stages(1.0, 1.0, 1.0)
    pools = plan_pools(stages, total)
    assert sum(c * n for c, n in pools) <= total * CPU_BUDGET + 1e-9
    assert all(n >= 1 for _, n in pools)


def test_cheap_stages_join_a_neighbour():
    probe, analyse, filt, encode = _stages(0.25, 1.0, 0.1, 1.0)
    groups = group_stages([probe, analyse, filt, encode])
    assert [[s.label for s in g.stages] for g in groups] == [["0", "1", "2"], ["3"]]
    assert groups[0].cpus == 1.0
    (only,) = group_stages([filt])
    assert only.stages == [filt]
