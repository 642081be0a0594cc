"""Add VAE latents of the accepted clips to a finished OUTPUT (``curate latents OUTPUT PIPELINE``).

The trainer works on latents; computing them once here, instead of
decoding and encoding every clip on every epoch, is the point. For each
accepted clip (``clips/``) and each bucket of the pipeline's ``latents:``
section it fits, the stored clip bytes are decoded once (all its buckets from
one pass, with exactly the loader's resize/crop/frame choice,
:func:`curate.data.decode.decode_targets`), batched per bucket through the VAE,
and the posterior mean (optionally the log-variance) is stored as fp16/bf16
bytes in ``latents/part-*.parquet``.

Commits go through the store like a rewrite (:meth:`OutputStore.commit_rewrite`):
staged files, a sidecar naming the VAE and the sets it adds (class, weights
revision, factors, latent shape, dtype), the ledger rename last. Nothing is
superseded: latent rows are only appended, and a pass first reads which
``(clip, bucket)`` already have latents for the VAE and skips them, so a crash
at any point followed by the same command ends with exactly one row per clip,
VAE and bucket.

``curate run`` with a ``latents:`` section computes the same latents of the
clips it accepts (:mod:`curate.stages.latents`) with this module's bucket fit
(:func:`fitting`), targets (:func:`targets`) and set records (:func:`set_record`),
so a pass after such a run finds them and skips those clips.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from curate.config import LatentBucketConfig, LatentsConfig, PipelineConfig
from curate.data.decode import DecodeError, DecodeOptions, Target, decode_targets, normalize
from curate.data.latents import fits, to_bytes
from curate.output import manifest as mf
from curate.output.funnel import ACCEPTED_TABLE
from curate.output.derived import check_same_maker, commit_rows, committed, models_record, read_compatible
from curate.output.rows import MAX_BUFFER_AGE_S
from curate.output.shards import read_table
from curate.output.store import OutputStore, new_run_id
from curate.schema import to_table

log = logging.getLogger(__name__)
TABLE = "latents"
_ROW_COLUMNS = ["clip_id", "video_id", "video", "video_format", "fps", "num_frames", "width", "height", "source_uri",
                "start_s", "end_s", "source_rotation"]
# What must stay the same for one VAE id: otherwise two kinds of tensor would share a name.
IDENTITY = ("class", "revision", "random_init", "frames", "dtype", "posterior")


@dataclass(frozen=True)
class LatentsResult:
    vae: str
    computed: int  # latent rows written (clip x bucket)
    skipped: int  # clip x bucket pairs that had latents already
    unfit: int  # accepted clips that fit no bucket
    failed: list[str]  # clips whose bytes did not decode (retried by the next pass)
    commits: int
    seconds: float


@dataclass
class _Pass:
    """One ``curate latents`` pass: pending clips per bucket, staged files, commits."""

    store: OutputStore
    cfg: LatentsConfig
    load: Callable[[], Any]  # the VAE, loaded on the first batch: a pass with nothing to do loads nothing
    sets: dict[str, dict[str, Any]]  # bucket key -> what the manifest records (from earlier commits)
    vae: Any = None
    pending: dict[str, list[tuple[dict[str, Any], Any]]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    added: dict[str, int] = field(default_factory=dict)
    nbytes: int = 0
    since: float = field(default_factory=time.monotonic)
    commits: int = 0
    computed: int = 0

    def add(self, row: dict[str, Any], bucket: LatentBucketConfig, pixels: Any) -> None:
        queue = self.pending.setdefault(bucket.key, [])
        queue.append((row, pixels))
        if len(queue) >= self.cfg.batch_size:
            self._encode(bucket.key)
        if self.nbytes >= self.store.target_bytes or time.monotonic() - self.since >= MAX_BUFFER_AGE_S:
            self.commit()

    def _encode(self, key: str) -> None:
        import torch

        batch = self.pending.pop(key, [])
        if not batch:
            return
        pixels = normalize(torch.stack([p for _, p in batch]), options(self.cfg))
        self.vae = self.vae or self.load()
        mean, logvar = self.vae.encode(pixels)
        info = self.sets.get(key)
        set_info = set_record(self.cfg, self.vae.info, key, list(mean.shape[1:]))
        if info is not None and info["shape"] != set_info["shape"]:
            raise RuntimeError(f"VAE {self.cfg.vae.id} bucket {key}: latents of shape {set_info['shape']}, earlier ones {info['shape']}")
        self.sets[key] = {k: v for k, v in set_info.items() if k != "rows"}
        for i, (row, _) in enumerate(batch):
            self.rows.append({"clip_id": row["clip_id"], "video_id": row["video_id"], "vae": self.cfg.vae.id, "bucket": key,
                              "latent": to_bytes(mean[i], self.cfg.dtype),
                              "logvar": to_bytes(logvar[i], self.cfg.dtype) if self.cfg.posterior else None,
                              "run_id": self.store.run_id})
            self.nbytes += len(self.rows[-1]["latent"]) * (2 if self.cfg.posterior else 1)
        self.added[key] = self.added.get(key, 0) + len(batch)

    def commit(self, final: bool = False) -> None:
        """Encode what waits (all of it when ``final``), then commit the rows as one version."""
        if final:
            for key in list(self.pending):
                self._encode(key)
        if not self.rows:
            return
        sets = {f"{self.cfg.vae.id}/{k}": dict(self.sets[k], rows=n) for k, n in sorted(self.added.items())}
        sidecar = commit_rows(self.store, TABLE, to_table(self.rows, TABLE), {"vae": self.cfg.vae.id, "computed": len(self.rows), "sets": sets})
        log.info("latents: committed %d rows of VAE %s as part %s", len(self.rows), self.cfg.vae.id, sidecar["part"])
        self.computed += len(self.rows)
        self.commits += 1
        self.rows, self.added, self.nbytes, self.since = [], {}, 0, time.monotonic()


def frames_setting(cfg: LatentsConfig) -> dict[str, Any]:
    """How frames were chosen and resized: the loader must ask for the same (``fps``/``stride``) to use the latents."""
    return {k: getattr(cfg, k) for k in ("fps", "stride", "allow_upscale", "resize", "crop", "temporal", "interpolation")}


def set_record(cfg: LatentsConfig, vae_info: dict[str, Any], key: str, shape: list[int]) -> dict[str, Any]:
    """What the manifest records of VAE ``vae_info``'s latents of bucket ``key`` (less ``rows``): one definition for both passes."""
    return dict(vae_info, bucket=key, frames=frames_setting(cfg), shape=shape, dtype=cfg.dtype, posterior=cfg.posterior)


def options(cfg: LatentsConfig) -> DecodeOptions:
    """The loader's decode options the latents are made with (float pixels, as ``output="float"``)."""
    return DecodeOptions(resize=cfg.resize, crop=cfg.crop, temporal=cfg.temporal, output="float", interpolation=cfg.interpolation)


def fitting(cfg: LatentsConfig, row: dict[str, Any]) -> list[LatentBucketConfig]:
    """The buckets of ``cfg`` clip ``row`` (``width``, ``height``, ``num_frames``, ``fps`` as stored) fits, by the loader's rule."""
    ok = fits([(b.num_frames, b.height, b.width) for b in cfg.buckets], cfg.fps, cfg.stride, cfg.allow_upscale,
              *(np.array([row[c]], dtype=float) for c in ("width", "height", "num_frames", "fps")))
    return [b for b, y in zip(cfg.buckets, ok[0]) if y]


def targets(cfg: LatentsConfig, buckets: list[LatentBucketConfig]) -> list[Target]:
    """Empty uint8 ``(T, 3, H, W)`` targets of ``buckets``, chosen and resized as the loader does."""
    import torch

    opts = options(cfg)
    # temporal start/center and centre crops draw nothing; the generator only fills the signature
    return [Target(torch.empty((b.num_frames, 3, b.height, b.width), dtype=torch.uint8), cfg.fps, opts, np.random.default_rng(0), cfg.stride)
            for b in buckets]


def _existing(store: OutputStore, vae_id: str) -> set[tuple[str, str]]:
    """``(clip_id, bucket)`` pairs that have committed latents of ``vae_id``."""
    have: set[tuple[str, str]] = set()
    for _, t in committed(store, TABLE, ["clip_id", "vae", "bucket"]):
        for cid, v, b in zip(*(t.column(c).to_pylist() for c in ("clip_id", "vae", "bucket"))):
            if v == vae_id:
                have.add((cid, b))
    return have


def earlier_sets(store: OutputStore, vae_id: str) -> dict[str, dict[str, Any]]:
    """Bucket key -> set record of earlier commits of ``vae_id``."""
    out: dict[str, dict[str, Any]] = {}
    for key, info in mf.derived_section(TABLE, [], store.versions)["sets"].items():
        vid, _, bucket = key.partition("/")
        if vid == vae_id:
            out[bucket] = {k: v for k, v in info.items() if k != "rows"}
    return out


def add_latents(output: str, config: PipelineConfig) -> LatentsResult:
    """Compute the latents ``config.latents`` asks for that ``output`` lacks, and commit them.

    Raises:
        ConfigError: not a curate output, no latents section, a pipeline that differs in more
            than latents, or a VAE id already used for other latents.
        ModelUnavailable: the VAE weights cannot be had (raised before any clip is read).
        LockedError: another process writes to ``output``.
    """
    from curate.models.device import pick_device, pick_precision
    from curate.models.vae import load_vae, vae_info

    t0 = time.perf_counter()
    loc, doc = read_compatible(output, config, "latents")
    cfg = config.latents
    assert cfg is not None
    info = vae_info(cfg.vae, config.models)  # the weights before any input: ModelUnavailable names the VAE and the fix
    device = pick_device(cfg.device)
    precision = pick_precision(device, cfg.precision)
    frames = frames_setting(cfg)
    failed: list[str] = []
    skipped = unfit = 0
    with OutputStore.open(output, config, run_id=new_run_id(), command="latents", models=models_record(doc, "vae", info)) as store:
        earlier = earlier_sets(store, cfg.vae.id)
        check_same_maker(f"latents named {cfg.vae.id!r}", earlier, dict(info, frames=frames, dtype=cfg.dtype, posterior=cfg.posterior),
                         IDENTITY, "give this VAE or these settings another latents.vae.id")
        have = _existing(store, cfg.vae.id)
        work = _Pass(store, cfg, lambda: load_vae(cfg.vae, config.models, device, precision), earlier)
        files = [e["path"] for e in store.shards.get(ACCEPTED_TABLE, [])]
        meta = [read_table(loc, rel, ["clip_id", "width", "height", "num_frames", "fps"]) for rel in files]
        for rel, m in zip(files, meta):
            todo: dict[int, list[LatentBucketConfig]] = {}
            ok = fits([(b.num_frames, b.height, b.width) for b in cfg.buckets], cfg.fps, cfg.stride, cfg.allow_upscale,
                      *(m.column(c).to_numpy(zero_copy_only=False) for c in ("width", "height", "num_frames", "fps")))
            for i, cid in enumerate(m.column("clip_id").to_pylist()):
                buckets = [b for j, b in enumerate(cfg.buckets) if ok[i, j]]
                unfit += not buckets
                missing = [b for b in buckets if (cid, b.key) not in have]
                skipped += len(buckets) - len(missing)
                if missing:
                    todo[i] = missing
            if todo:
                rows = read_table(loc, rel, _ROW_COLUMNS).take(pa.array(sorted(todo), pa.int64())).to_pylist()
                for row, buckets in zip(rows, (todo[i] for i in sorted(todo))):
                    tgs = targets(cfg, buckets)
                    try:
                        decode_targets(row, tgs)
                    except DecodeError as e:
                        log.warning("latents: clip %s does not decode, skipped (the next pass retries it): %s", row["clip_id"], e)
                        failed.append(row["clip_id"])
                        continue
                    for b, tg in zip(buckets, tgs):
                        work.add(row, b, tg.out)
        work.commit(final=True)
    return LatentsResult(vae=cfg.vae.id, computed=work.computed, skipped=skipped, unfit=unfit, failed=failed,
                         commits=work.commits, seconds=round(time.perf_counter() - t0, 3))
