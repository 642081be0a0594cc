"""Distributed dedup keeps exactly the clips the single-machine greedy pass keeps.

The decomposition is exact only if (a) the neighbour graph misses no pair and
(b) a pair's test has one answer whichever rows are computed together; the
pure pieces are tested without Ray, the whole pass on Ray against the greedy
pass on random and adversarial candidates (near-threshold chains, pHash
chains at exactly the distance, mass duplicates).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from curate.config import DedupConfig, PipelineConfig
from curate.config_diff import check_run_fits
from curate.dedup import dedup_output, engine, find_duplicates
from curate.dedup_distributed import bands, build_index, components, forest, range_pairs, resolve_components
from curate.dedup_greedy import candidates, exact_cosine, greedy, visiting_order
from curate.output import OutputStore
from curate.validate import validate
from tests.test_output_store import fake_video


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clustered(rng: np.random.Generator, n: int, dim: int, spread: float) -> np.ndarray:
    centres = rng.standard_normal((max(1, n // 5), dim))
    return (centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, dim))).astype(np.float32)


def _connected(n: int, edges: tuple[np.ndarray, np.ndarray], i: np.ndarray, j: np.ndarray) -> bool:
    labels = np.arange(n)
    for comp in components(n, [edges]):
        labels[comp] = comp[0]
    return bool(np.all(labels[i] == labels[j]))


# -- the pieces, without Ray -----------------------------------------------------------------------

@pytest.mark.parametrize("d", [0, 1, 4, 7, 12, 63])
def test_bands_cover_the_hash_and_every_near_pair_shares_one(d: int) -> None:
    bs = bands(d)
    assert len(bs) == d + 1 and sum(w for _, w in bs) == 64 and [s for s, _ in bs] == sorted(s for s, _ in bs)
    rng = random.Random(d)
    for _ in range(300):
        a = rng.getrandbits(64)
        b = a
        for bit in rng.sample(range(64), rng.randint(0, d)):
            b ^= 1 << bit
        assert any((a >> s) & ((1 << w) - 1) == (b >> s) & ((1 << w) - 1) for s, w in bs)


def test_forest_keeps_the_components() -> None:
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, 200, 150), rng.integers(0, 200, 150)
    f = forest(i, j)
    assert len(f[0]) <= len(np.unique(np.concatenate([i, j])))
    assert _connected(200, f, i, j)
    assert {tuple(c) for c in components(200, [f])} == {tuple(c) for c in components(200, [(i, j)])}


@pytest.mark.parametrize("spread,thr,dim", [(0.25, 0.95, 32), (0.6, 0.8, 64), (1.0, 0.3, 16), (0.02, 0.999, 128)])
def test_exact_probing_misses_no_pair(spread: float, thr: float, dim: int) -> None:
    """The IVF index answers every pair over the threshold, clustered or not (isotropic: spread 1)."""
    rng = np.random.default_rng(int(thr * 1000))
    n = 2000
    c = candidates(["0"] * n, _clustered(rng, n, dim, spread), np.ones(n, bool), list(range(n)), DedupConfig(cosine_threshold=thr))
    rows = np.arange(n)
    edges = range_pairs(c, build_index(c, rows), rows, thr)
    i, j = np.nonzero(np.triu(c.emb @ c.emb.T >= thr - 1e-4, 1))
    assert len(i) > 0 and _connected(n, edges, i, j)


def test_near_threshold_pairs_are_decided_exactly() -> None:
    """A float32 product may put a pair on either side of the threshold; the kernel asks the exact value."""
    rng = np.random.default_rng(3)
    u = rng.standard_normal(512).astype(np.float32)
    pair = np.stack([u, u + 0.3 * rng.standard_normal(512).astype(np.float32)])
    c = candidates(["0", "f" * 16], pair, np.ones(2, bool), [0, 1], DedupConfig())
    thr = exact_cosine(c.emb[0], c.emb[1])
    assert 0.9 < thr < 1.0
    for cut, dropped in ((thr, True), (float(np.nextafter(thr, 2.0)), False)):
        cfg = DedupConfig(phash_max_distance=None, cosine_threshold=cut)
        assert bool(greedy(c, cfg)) == dropped


# -- adversarial and random candidates -------------------------------------------------------------

def _chain(n: int, thr: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Points on a great circle, neighbours at cosine ``thr`` (± jitter): a chain where every link is on the edge."""
    angles = np.cumsum(np.full(n, np.arccos(thr)) + jitter * rng.standard_normal(n))
    x = np.zeros((n, 64), np.float32)
    x[:, 0], x[:, 1] = np.cos(angles), np.sin(angles)
    x[:, 2:] = 1e-4 * rng.standard_normal((n, 62))
    return x


def _phash_chain(n: int, d: int, rng: random.Random) -> list[str]:
    """Each hash exactly ``d`` bits from the previous one: all within reach of a neighbour, few of two."""
    h, out = rng.getrandbits(64), []
    for _ in range(n):
        out.append(f"{h:016x}")
        for bit in rng.sample(range(64), d):
            h ^= 1 << bit
    return out


def _case(name: str, seed: int) -> tuple[list[str], list[str], np.ndarray, np.ndarray, list, list, DedupConfig]:
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    n = 1500
    ids = [f"clip{i:05d}" for i in range(n)]
    score = [prng.choice([None, float("nan"), round(prng.random(), 2), prng.random()]) for _ in range(n)]
    rank = [int(prng.random() < 0.2) for _ in range(n)]
    phash = [f"{prng.getrandbits(64):016x}" for _ in range(n)]
    has = rng.random(n) > 0.05
    cfg = DedupConfig(phash_max_distance=4, cosine_threshold=0.95)
    if name == "random":
        emb = _clustered(rng, n, 64, 0.2)
        phash = [f"{prng.getrandbits(64) & 0xFFFF_0000_0000_FFFF:016x}" for _ in range(n)]  # many near twins
    elif name == "cosine-chain":
        emb = np.concatenate([_chain(n // 3, 0.95, 1e-7, rng), _chain(n // 3, 0.95, 0.0, rng), _chain(n - 2 * (n // 3), 0.95, 1e-3, rng)])
        cfg = DedupConfig(phash_max_distance=None, cosine_threshold=0.95)
    elif name == "phash-chain":
        emb = rng.standard_normal((n, 16)).astype(np.float32)
        phash = _phash_chain(n, 4, prng)
    elif name == "mass-duplicates":
        emb = np.repeat(rng.standard_normal((3, 32)).astype(np.float32), n // 3, axis=0)
        phash = [f"{prng.choice([0, 1, 2**63]):016x}" for _ in range(n)]
        cfg = DedupConfig(phash_max_distance=0, cosine_threshold=1.0)
    else:  # the cosine test alone, on a wide threshold
        emb = _clustered(rng, n, 32, 0.8)
        cfg = DedupConfig(phash_max_distance=None, cosine_threshold=0.5)
    return ids, phash, emb, has, score, rank, cfg


CASES = ["random", "cosine-chain", "phash-chain", "mass-duplicates", "wide-cosine"]


@pytest.mark.parametrize("name", CASES)
def test_components_decide_like_the_whole(name: str) -> None:
    """Without Ray: the exact graph's components, resolved one by one, give the greedy result."""
    ids, phash, emb, has, score, rank, cfg = _case(name, 1)
    c = candidates(phash, emb, has, visiting_order(ids, rank, score), cfg)
    whole = greedy(c, cfg)
    assert whole, "the case must have duplicates"
    n = len(c)
    near = np.zeros((n, n), bool)
    if cfg.phash_max_distance is not None:
        near |= np.bitwise_count(c.hashes[:, None] ^ c.hashes[None, :]) <= cfg.phash_max_distance
    if cfg.cosine_threshold is not None:
        near |= (c.emb @ c.emb.T >= cfg.cosine_threshold - 1e-4) & c.has[:, None] & c.has[None, :]
    assert resolve_components(c, components(n, [np.nonzero(near)]), cfg) == whole


@pytest.mark.parametrize("name", CASES)
def test_distributed_keeps_what_greedy_keeps(name: str, ray_session) -> None:
    ids, phash, emb, has, score, rank, cfg = _case(name, 2)
    single = find_duplicates(ids, phash, emb, has, score, rank, cfg.model_copy(update={"engine": "greedy"}))
    spread = find_duplicates(ids, phash, emb, has, score, rank, cfg.model_copy(update={"engine": "distributed"}))
    assert single and spread == single  # same duplicates, same clip named, same reason


def test_auto_engine_by_size() -> None:
    from curate.dedup import DISTRIBUTED_FROM

    assert engine(DedupConfig(), DISTRIBUTED_FROM - 1) == "greedy"
    assert engine(DedupConfig(), DISTRIBUTED_FROM) == "distributed"
    assert engine(DedupConfig(engine="distributed"), 3) == "distributed"


def test_the_engine_is_operational() -> None:
    """Switching engines changes no clip: a run may add to an OUTPUT deduplicated by the other engine."""
    old = PipelineConfig().model_dump(mode="json")
    check_run_fits("out", old, PipelineConfig.model_validate({"dedup": {"engine": "distributed"}}).model_dump(mode="json"))
    old["dedup"].pop("engine")  # an OUTPUT written before the setting existed
    check_run_fits("out", old, PipelineConfig().model_dump(mode="json"))


def test_commit_path_uses_the_configured_engine(ray_session) -> None:
    """``dedup_output`` over a store: both engines commit the same duplicates."""
    results = {}
    for name in ("greedy", "distributed"):
        out = f"memory://curate-engine-{name}-{random.getrandbits(32)}/out"
        config = PipelineConfig.model_validate({"dedup": {"score": "sharpness", "engine": name}})
        with OutputStore.open(out, config) as store:
            for i in range(40):
                video = fake_video(i)
                if i % 4:  # a near twin (one bit off) of a clip of the video before
                    twin = fake_video(i - 1)["clips"][i % 3]["phash"]
                    video["clips"][0]["phash"] = f"{int(twin, 16) ^ (1 << i):016x}"
                store.add(video)
            store.commit()
            result = dedup_output(store)
        assert validate(out) == []
        results[name] = (result.duplicates, result.changed, sorted((result.record or {}).get("moves", {}).items()))
    assert results["greedy"][0] > 0 and results["greedy"] == results["distributed"]
