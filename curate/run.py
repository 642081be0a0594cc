"""Drive one run: check models → discover → skip what OUTPUT already holds → stages → store → dedup.

Inputs stream: discovery yields one record at a time, the skip check asks
the ledger per record (by URI and size; the 2 MiB content hash that confirms
it runs here only for inputs the ledger may hold, all others are hashed by the
probe stage on the workers), and the pending ones are spilled to a work list in
OUTPUT (``curate/output/worklist.py``) that the runner reads back in chunks,
so the driver's memory does not grow with the number of inputs. The driver
owns the commit: with the local runner finished records come back and the
store writes them; with Ray, writers beside the stages write the shards and
the driver receives only paths, counts and ledger rows, which it commits
ledger-last (``curate/output/writer.py``, ``curate/output/store.py``). A
killed run loses at most the videos not yet committed, and a rerun on the
same OUTPUT picks up where it stopped. Models are checked before anything
else, so missing weights stop the run before a single video is opened.
With a ``latents:`` section the accepted clips' latents are computed in the
run (``curate/stages/latents.py``) and committed with their videos' rows.
Duplicates are removed last, over everything committed (``curate/dedup.py``),
so the kept clips do not depend on the runner or on how often a run resumed.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from curate.config import ConfigError, PipelineConfig
from curate.discover import InputError, discover
from curate.output.rows import Outcome, finished
from curate.pipeline import build_stages
from curate.records import DONE, REJECTED, is_piece
from curate.stage import Stage

log = logging.getLogger("curate.run")

RUNNERS = ("ray", "local")


@dataclass
class RunSummary:
    run_id: str
    output: str
    inputs: int = 0
    skipped: int = 0
    processed: int = 0
    status: dict[str, int] = field(default_factory=dict)
    clips: int = 0
    accepted: int = 0
    flagged: int = 0
    duplicates: int = 0
    ray_init_s: float = 0.0
    wall_s: float = 0.0
    driver_bytes: int = 0  # what workers sent the driver (Ray runner): metadata, never clip bytes


def model_record(config: PipelineConfig) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """``(schema params, manifest models entry)`` of ``config``'s models; loads no weights.

    The params give the embedding column its type (dimension of the CLIP
    model, configured dtype); ``None`` for a model-free pipeline keeps what
    OUTPUT was written with.
    """
    if config.clip is None:
        return None, {}
    from curate.models.clip import manifest_entry, resolve
    from curate.models.hub import snapshot_revision

    clip = manifest_entry(config.clip, config.models, config.embedding)
    found = None if config.clip.random_init else resolve(config.clip, config.models, download=False)
    # The hub commit of cached weights: which version of the model wrote the embeddings.
    clip["weights_revision"] = snapshot_revision(found.weights) if found is not None and found.weights else None
    record: dict[str, Any] = {"clip": clip, "random_init": config.random_init}
    if config.aesthetic is not None:
        record["aesthetic"] = config.aesthetic.model_dump(mode="json")
    if config.caption is not None:
        record["caption"] = {k: v for k, v in config.caption.model_dump(mode="json").items() if k in ("kind", "model", "revision", "prompt")}
    return {"EMBED_DIM": clip["dim"], "EMBED_DTYPE": clip["dtype"]}, record


# pyarrow 15-25 cannot write the null fixed-size-list embeddings of a run without CLIP: on pyarrow 25 a
# model-free run failed with "ArrowInvalid: Expected all lists to be of size=512" once every video was done.
# pyproject asks for 26, but a cluster image's own pyarrow stays where curate is put on the path without pip.
MIN_PYARROW = (26, 0)


def check_pyarrow(version: str | None = None) -> None:
    """Raise :class:`ConfigError` before any input is read when pyarrow (``version``: the installed one)
    cannot write curate's tables."""
    import pyarrow

    version = version or pyarrow.__version__
    have = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
    if have < MIN_PYARROW:
        need = ".".join(map(str, MIN_PYARROW))
        raise ConfigError(f"curate needs pyarrow >= {need} to write its tables, but this environment has pyarrow {version}; "
                          f"install a newer one with `pip install 'pyarrow>={need}'`")


def run_pipeline(
    config: PipelineConfig,
    inputs: list[str],
    output: str,
    *,
    runner: str = "ray",
    ray_address: str | None = None,
    limit: int | None = None,
    on_video: Callable[[Outcome, RunSummary], None] | None = None,
    on_start: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Run ``config`` over ``inputs`` into ``output``; returns what happened.

    ``on_start`` is called once the work list is known, ``on_video`` after
    each video's rows are handed to the store or a writer (the CLI draws
    progress with them).

    Raises:
        ModelUnavailable: a model's weights cannot be had; nothing was read or written.
        ConfigError: the text section's detector is not installed, or pyarrow is too old; nothing was read or written.
        InputError: an input names nothing or cannot be read; nothing was written.
    """
    from curate.dedup import dedup_output
    from curate.models.download import check_models
    from curate.output.store import OutputStore, new_run_id
    from curate.output.worklist import WorkList
    from curate.stages.probe import identify

    t0 = time.perf_counter()
    check_pyarrow()
    check_models(config)
    vae = _vae_record(config)
    if getattr(config, "text", None) is not None:
        from curate.models.text_detector import check_installed

        check_installed()
    stages = build_stages(config)
    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r}; choose one of {', '.join(RUNNERS)}")
    params, models = model_record(config)
    summary = RunSummary(run_id=new_run_id(), output=output)
    if "://" not in output and os.path.exists(output) and not os.path.isdir(output):
        raise InputError(f"--output {output} is a file; OUTPUT must be a directory (new or from an earlier run)")
    # Every input is checked, and the first video found, before OUTPUT is touched:
    # a wrong path or an empty folder writes nothing.
    videos = discover(inputs, limit=limit)
    first = next(videos, None)
    if first is None:
        log.warning("no input videos found in %s", ", ".join(inputs))
        summary.wall_s = time.perf_counter() - t0
        return summary
    models = _models(output, models, vae)
    with OutputStore.open(output, config, run_id=summary.run_id, schema_params=params, models=models) as store:
        if vae is not None:
            _check_latent_sets(store, config, vae)
        work = WorkList(store.location, store.tag)
        try:
            for video in itertools.chain([first], videos):  # the skip check, one record at a time
                summary.inputs += 1
                if store.maybe_finished(video["uri"], video["size_bytes"]):
                    video = identify(video)  # its content hash confirms it (a file replaced by one of the same size is new)
                    if store.status(video["video_id"]) in (DONE, REJECTED):
                        summary.skipped += 1
                        continue
                work.add(video)  # unhashed: the probe stage hashes it on a worker
            work.close()
            log.info("run %s: %d inputs, %d already finished in %s, %d to process",
                     summary.run_id, summary.inputs, summary.skipped, output, work.count)
            if on_start:
                on_start(summary)
            if runner == "local":
                from curate.runners.local import run_local

                for video in run_local(stages, work.records()):
                    done = store.add(video if is_piece(video) else finished(video))  # a piece: stored now, committed with its video
                    if done is not None:
                        _count(done, summary, on_video)
                    del video  # a piece stored is not held while the next is made
            elif work.chunks:
                _write_on_ray(store, stages, work.chunks, ray_address, summary, on_video)
        finally:
            work.remove()
        store.commit()
        if config.dedup.enabled:
            summary.duplicates = dedup_output(store).duplicates
        store.close("completed")
    summary.wall_s = time.perf_counter() - t0
    return summary


def _vae_record(config: PipelineConfig) -> dict[str, Any] | None:
    """What the manifest records of the VAE in-run latents use (its weights checked, not loaded); ``None`` without latents."""
    if config.latents is None:
        return None
    from curate.models.vae import vae_info

    return vae_info(config.latents.vae, config.models)


def _models(output: str, models: dict[str, Any], vae: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest's models record: the run's, the derived tables' models OUTPUT records (their tables stay), and the VAE it uses."""
    from curate.output import manifest as mf
    from curate.output.derived import models_record
    from curate.output.shards import Location

    previous = (mf.read(Location.of(output)) if "://" in output or os.path.isdir(output) else None) or {}
    merged = {**models, **{k: v for k, v in (previous.get("models") or {}).items() if k in ("vae", "text_encoder")}}
    return models_record({"models": merged}, "vae", vae) if vae is not None else merged


def _check_latent_sets(store: Any, config: PipelineConfig, vae: dict[str, Any]) -> None:
    """Refuse a VAE id OUTPUT holds latents of made otherwise (as ``curate latents`` does), before any input is processed."""
    from curate.latents import IDENTITY, earlier_sets, frames_setting
    from curate.output.derived import check_same_maker

    cfg = config.latents
    assert cfg is not None
    check_same_maker(f"latents named {cfg.vae.id!r}", earlier_sets(store, cfg.vae.id),
                     dict(vae, frames=frames_setting(cfg), dtype=cfg.dtype, posterior=cfg.posterior), IDENTITY,
                     "give this VAE or these settings another latents.vae.id")


def _write_on_ray(store: Any, stages: list[Stage], chunks: list[str], address: str | None, summary: RunSummary,
                  on_video: Callable[[Outcome, RunSummary], None] | None) -> None:
    """Workers write the shards; the driver counts outcomes and commits what they staged.

    A commit whose videos streamed clip pieces waits until those pieces are
    reported too (they may come from another node's writer), then commits with them.
    """
    from curate.output.pieces import Pieces
    from curate.output.writer import WriterSpec
    from curate.runners.ray import init_ray, write_ray

    summary.ray_init_s = init_ray(address)
    spec = WriterSpec(root=store.location.url, tag=store.tag, rows=store.rows, target_bytes=store.target_bytes, row_group_rows=store.row_group_rows)
    pieces = Pieces()
    for written in write_ray(stages, chunks, spec, address):
        summary.driver_bytes += written.received
        for piece in written.pieces:
            pieces.add(piece)
        for done in pieces.settle(written.outcomes):  # a video's outcome counts once its pieces are in
            _count(done, summary, on_video)
        for staged in written.staged:
            pieces.hold(staged)
        for staged in pieces.ready():
            store.commit_staged(staged)
    if pieces.waiting:
        raise RuntimeError(f"{pieces.waiting} commit(s) or videos still wait for clip pieces after every writer finished; rerun to resume")


def _count(done: Outcome, summary: RunSummary, on_video: Callable[[Outcome, RunSummary], None] | None) -> None:
    summary.processed += 1
    summary.status[done.status] = summary.status.get(done.status, 0) + 1
    summary.clips += done.clips
    summary.accepted += done.kept
    summary.flagged += done.flagged
    detail = f"clips={done.clips} kept={done.kept}" if done.status == DONE else done.reason or ""
    log.info("%-8s %s  %s  %.1fs", done.status, done.uri, detail, done.seconds)
    if on_video:
        on_video(done, summary)
