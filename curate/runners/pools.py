"""Actor pool sizes from the cluster's resources: a pure function, so mixed CPU/GPU clusters are testable here.

Stages declare per actor ``cpus``, ``gpus`` (the GPU fraction a model stage
wants wherever the cluster has GPUs) and ``batch_size`` / ``gpu_batch_size``
(videos per Ray batch on CPU / on a GPU). :func:`plan_pools` turns them and
the resources of each live node into one :class:`Pool` per stage group:

* **GPU pools** (the cluster has GPUs and the stage declares a fraction):
  one actor of every GPU stage must fit at once, so the fractions are scaled
  down when they sum to more than the GPUs; then every GPU pool gets as many
  actors as whole sets of them fit (shares 0.4 + 0.4 + 0.2 on 4 GPUs: 4 actors
  each). Their CPUs must come from the GPU nodes: at most
  ``GPU_ACTOR_CPU_SHARE`` of ``CPU_BUDGET`` of those nodes' CPUs, declared
  CPUs scaled down to fit.
* **Light GPU pools** (a stage declaring at most ``LIGHT_GPU_SHARE``: the
  analysis stage when TransNetV2 runs inside its decode pass) are CPU work
  that touches a GPU now and then: sized by their CPUs like a CPU pool, but
  no more actors than the GPU nodes' CPUs hold, and together they keep
  ``LIGHT_GPU_CLAIM`` of the GPUs (the model stages' fractions shrink by as
  much, their actor counts do not).
* **CPU pools** share what is left of ``CPU_BUDGET`` of all CPUs: declared
  CPUs scaled down until one actor per pool fits (every pool must be able to
  run at once, or the streaming executor can wait forever), spare budget
  adding actors to the stages that declare the most (decode, encode).

A cluster without GPUs runs the model stages as CPU pools.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

# Fraction of the CPUs that actor pools may claim together; the rest stays free
# for Ray Data's own tasks and the driver (pools that claim every CPU can
# deadlock the streaming executor, seen on 2-CPU machines).
CPU_BUDGET = 0.75
# GPU actors mostly wait on their device: they may claim at most this share of
# the GPU nodes' CPU budget, the rest stays with the decode and encode pools feeding them.
GPU_ACTOR_CPU_SHARE = 0.5
# A stage declaring at most this GPU fraction per actor is CPU work that uses a GPU lightly
# (TransNetV2 on 48x27 frames, ~4 ms a 100-frame window on an H200: bench/bench_split_gpu.py).
LIGHT_GPU_SHARE = 0.05
# The share of the GPUs such stages' actors hold together; the model stages' fractions make room for it.
LIGHT_GPU_CLAIM = 0.1


class Declares(Protocol):
    """What a stage (or a group of stages sharing an actor) declares per actor."""

    @property
    def cpus(self) -> float: ...

    @property
    def gpus(self) -> float: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def gpu_batch_size(self) -> int | None: ...


@dataclass(frozen=True)
class Pool:
    """One actor pool: Ray's ``num_cpus``/``num_gpus`` per actor, the most actors, videos per batch."""

    cpus: float
    gpus: float
    actors: int
    batch_size: int


def cpu_pools(cpus: Sequence[float], budget: float) -> list[tuple[float, int]]:
    """``(cpus per actor, actors)`` for CPU pools declaring ``cpus`` within ``budget`` CPUs in all."""
    declared = sum(cpus) or 1.0
    scaled = [c * min(1.0, budget / declared) for c in cpus]
    sizes = [1] * len(cpus)
    spare = budget - sum(scaled)
    for i in sorted(range(len(cpus)), key=lambda i: -scaled[i]):
        if scaled[i] > 0 and spare >= scaled[i]:
            extra = int(spare // scaled[i])
            sizes[i] += extra
            spare -= extra * scaled[i]
    return list(zip(scaled, sizes))


def plan_pools(groups: Sequence[Declares], nodes: Sequence[Mapping[str, float]]) -> list[Pool]:
    """One :class:`Pool` per group from the live nodes' resources (``{"CPU": 16, "GPU": 2}`` each)."""
    gpus_total = sum(float(n.get("GPU", 0)) for n in nodes)
    cpus_total = sum(float(n.get("CPU", 0)) for n in nodes) or 1.0
    gpu_node_cpus = sum(float(n.get("CPU", 0)) for n in nodes if float(n.get("GPU", 0)) > 0)
    on_gpu = [i for i, g in enumerate(groups) if g.gpus > 0 and gpus_total > 0]
    light = [i for i in on_gpu if groups[i].gpus <= LIGHT_GPU_SHARE]
    heavy = [i for i in on_gpu if i not in light]
    pools: dict[int, Pool] = {}
    if heavy:
        share = sum(groups[i].gpus for i in heavy)
        scale = min(1.0, gpus_total / share)
        sets = max(1, int(gpus_total // (share * scale) + 1e-9))
        room = 1.0 - LIGHT_GPU_CLAIM if light else 1.0  # fractions shrink; the sets stay
        claim = sum(groups[i].cpus for i in heavy) * sets
        cpu_scale = min(1.0, GPU_ACTOR_CPU_SHARE * CPU_BUDGET * gpu_node_cpus / claim) if claim else 1.0
        for i in heavy:
            g = groups[i]
            pools[i] = Pool(g.cpus * cpu_scale, g.gpus * scale * room, sets, g.gpu_batch_size or g.batch_size)
    gpu_claim = sum(p.cpus * p.actors for p in pools.values())
    on_cpu = [i for i in range(len(groups)) if i not in pools]
    for i, (cpus, actors) in zip(on_cpu, cpu_pools([groups[i].cpus for i in on_cpu], max(0.0, CPU_BUDGET * cpus_total - gpu_claim))):
        if i in light:  # placed on the GPU nodes only: no more actors than their CPUs hold
            actors = max(1, min(actors, int(max(0.0, CPU_BUDGET * gpu_node_cpus - gpu_claim) / max(cpus, 1e-9) + 1e-9)))
            pools[i] = Pool(cpus, min(groups[i].gpus, LIGHT_GPU_CLAIM * gpus_total / (actors * len(light))), actors, groups[i].batch_size)
        else:
            pools[i] = Pool(cpus, 0.0, actors, groups[i].batch_size)
    return [pools[i] for i in range(len(groups))]
