"""Pool planning: never claim every CPU; cheap stages share an actor; GPU stages become GPU pools where there are GPUs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from curate.config import PipelineConfig
from curate.pipeline import build_stages
from curate.runners.pools import CPU_BUDGET, GPU_ACTOR_CPU_SHARE, LIGHT_GPU_CLAIM, plan_pools
from curate.runners.ray import group_stages
from curate.stage import Stage


@dataclass
class S(Stage):
    label: str = ""


def _stages(*cpus: float) -> list[S]:
    return [S(cpus=c, label=str(i)) for i, c in enumerate(cpus)]


def _node(cpus: float, gpus: float = 0.0) -> dict[str, float]:
    return {"CPU": cpus, **({"GPU": gpus} if gpus else {}), "memory": 1e10}


@pytest.mark.parametrize("total", [1.0, 2.0, 4.0, 16.0])
def test_pools_leave_headroom(total: float):
    pools = plan_pools(_stages(1.0, 1.0, 1.0), [_node(total)])
    assert sum(p.cpus * p.actors for p in pools) <= total * CPU_BUDGET + 1e-9
    assert all(p.actors >= 1 and p.gpus == 0 for p in pools)


def test_cheap_stages_join_a_neighbour():
    probe, analyse, filt, encode = _stages(0.25, 1.0, 0.1, 1.0)
    groups = group_stages([probe, analyse, filt, encode])
    assert [[s.label for s in g.stages] for g in groups] == [["0", "1", "2"], ["3"]]
    assert groups[0].cpus == 1.0
    (only,) = group_stages([filt])
    assert only.stages == [filt]


def _mixed() -> list[S]:
    """decode (2 CPUs), CLIP (0.4 GPU), captioner (0.4 GPU), caption check (0.2 GPU), encode (1 CPU)."""
    return [S(cpus=2.0, label="decode"), S(cpus=1.0, gpus=0.4, batch_size=8, gpu_batch_size=32, label="clip"),
            S(cpus=1.0, gpus=0.4, batch_size=8, gpu_batch_size=32, label="caption"),
            S(cpus=0.5, gpus=0.2, batch_size=8, label="check"), S(cpus=1.0, label="encode")]


def test_a_cluster_without_gpus_runs_model_stages_as_cpu_pools():
    pools = plan_pools(_mixed(), [_node(16), _node(16)])
    assert [p.gpus for p in pools] == [0.0] * 5
    assert [p.batch_size for p in pools] == [1, 8, 8, 8, 1]  # CPU batch sizes
    assert sum(p.cpus * p.actors for p in pools) <= 32 * CPU_BUDGET + 1e-9


def test_mixed_cluster_gpu_pools_take_whole_sets_of_fractions():
    """A CPU-only head and two GPU workers (2 GPUs, 8 CPUs each): 0.4 + 0.4 + 0.2 = one GPU per set, four sets."""
    nodes = [_node(16), _node(8, 2), _node(8, 2)]
    pools = plan_pools(_mixed(), nodes)
    decode, clip, caption, check, encode = pools
    assert (clip.gpus, caption.gpus, check.gpus) == (0.4, 0.4, 0.2)
    assert clip.actors == caption.actors == check.actors == 4
    assert sum(p.gpus * p.actors for p in pools) == pytest.approx(4.0)  # every GPU used, none over-claimed
    assert (clip.batch_size, caption.batch_size, check.batch_size) == (32, 32, 8)  # the GPU batch size where declared
    gpu_cpus = sum(p.cpus * p.actors for p in (clip, caption, check))
    assert gpu_cpus <= GPU_ACTOR_CPU_SHARE * CPU_BUDGET * 16 + 1e-9  # from the GPU nodes' CPUs, with room to feed them
    assert decode.gpus == encode.gpus == 0.0 and decode.actors >= 2
    assert gpu_cpus + decode.cpus * decode.actors + encode.cpus * encode.actors <= CPU_BUDGET * 32 + 1e-9


def test_fewer_gpus_than_one_set_scales_the_fractions():
    """Half a GPU for stages declaring one in all: each gets half its share, one actor each; all still run at once."""
    pools = plan_pools(_mixed(), [_node(8, 0.5)])
    assert [p.gpus for p in pools[1:4]] == pytest.approx([0.2, 0.2, 0.1]) and [p.actors for p in pools[1:4]] == [1, 1, 1]


def test_gpus_declared_for_model_stages_unless_pinned_to_the_cpu(tmp_path):
    """Model stages declare their fraction whatever the driver has; ``device: cpu`` declares none; YAML overrides it."""
    base = {"clip": {"random_init": True}, "aesthetic": {}, "caption_check": {}, "caption": {"kind": "clip-retrieval"}}
    stages = {s.name: s for s in build_stages(PipelineConfig.model_validate(base))}
    assert stages["clip_embed"].gpus == 0.4 and stages["caption_check"].gpus == 0.2 and stages["caption"].gpus == 0.4
    assert stages["clip_embed"].gpu_batch_size == 32 and stages["probe"].gpus == 0
    pinned = {s.name: s for s in build_stages(PipelineConfig.model_validate({**base, "clip": {"random_init": True, "device": "cpu"}}))}
    assert pinned["clip_embed"].gpus == 0 and pinned["caption_check"].gpus == 0
    over = {s.name: s for s in build_stages(PipelineConfig.model_validate(
        {**base, "resources": {"clip_embed": {"gpus": 1, "gpu_batch_size": 64}}}))}
    assert over["clip_embed"].gpus == 1.0 and over["clip_embed"].gpu_batch_size == 64
    assert isinstance(over["clip_embed"].gpu_batch_size, int)


def _with_analysis() -> list[S]:
    """The decode pass with TransNetV2 in it (a token GPU share), CLIP (0.4), caption check (0.2), encode."""
    return [S(cpus=1.0, gpus=0.01, label="analyse"), S(cpus=1.0, gpus=0.4, batch_size=8, gpu_batch_size=32, label="clip"),
            S(cpus=0.5, gpus=0.2, batch_size=8, label="check"), S(cpus=1.0, label="encode")]


def test_a_light_gpu_stage_is_sized_by_its_cpus():
    """On one 16-CPU GPU machine the analysis pool gets as many actors as without a GPU, each with its token share;
    the model stages keep their actor counts and make room in their fractions."""
    (analyse, clip, check, encode), cpu_only = plan_pools(_with_analysis(), [_node(16, 1)]), plan_pools(_with_analysis(), [_node(16)])
    assert analyse.gpus == 0.01 and analyse.actors == cpu_only[0].actors >= 4
    assert analyse.gpus * analyse.actors <= LIGHT_GPU_CLAIM + 1e-9
    assert (clip.actors, check.actors) == (1, 1) and clip.gpus == pytest.approx(0.4 * (1 - LIGHT_GPU_CLAIM))
    assert sum(p.gpus * p.actors for p in (analyse, clip, check)) <= 1.0 + 1e-9
    assert sum(p.cpus * p.actors for p in (analyse, clip, check, encode)) <= 16 * CPU_BUDGET + 1e-9


def test_a_light_gpu_stage_fits_the_gpu_nodes_cpus():
    """A 16-CPU head without a GPU and one 8-CPU GPU worker: the analysis actors must all fit on the worker."""
    analyse, clip, check, _ = plan_pools(_with_analysis(), [_node(16), _node(8, 1)])
    assert analyse.gpus > 0 and analyse.actors >= 1
    assert analyse.cpus * analyse.actors + clip.cpus * clip.actors + check.cpus * check.actors <= 8 * CPU_BUDGET + 1e-9
