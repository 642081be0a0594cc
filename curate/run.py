"""Drive one run: check models → discover → skip what OUTPUT already holds → stages → store → dedup.

The driver owns the output: finished video records stream back from the
runner and the store commits them (see ``curate/output/store.py``), so a
killed run loses at most the videos not yet committed, and a rerun on the
same OUTPUT picks up where it stopped. Models are checked before anything
else, so missing weights stop the run before a single video is opened.
Duplicates are removed last, over everything committed (``curate/dedup.py``),
so the kept clips do not depend on the runner or on how often a run resumed.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from curate.config import PipelineConfig
from curate.discover import InputError, discover
from curate.pipeline import build_stages
from curate.records import DONE, PENDING, Record
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


def _runner(name: str, ray_address: str | None) -> Callable[[list[Stage], Iterable[Record]], Iterator[Record]]:
    if name == "local":
        from curate.runners.local import run_local

        return run_local
    if name == "ray":
        from curate.runners.ray import run_ray

        return lambda stages, videos: run_ray(stages, videos, address=ray_address)
    raise ValueError(f"unknown runner {name!r}; choose one of {', '.join(RUNNERS)}")


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


def run_pipeline(
    config: PipelineConfig,
    inputs: list[str],
    output: str,
    *,
    runner: str = "ray",
    ray_address: str | None = None,
    limit: int | None = None,
    on_video: Callable[[Record, RunSummary], None] | None = None,
    on_start: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Run ``config`` over ``inputs`` into ``output``; returns what happened.

    ``on_start`` is called once the work list is known, ``on_video`` after
    each video is committed to the store (the CLI draws progress with them).

    Raises:
        ModelUnavailable: a model's weights cannot be had; nothing was read or written.
        ConfigError: the text section's detector is not installed; nothing was read or written.
    """
    from curate.dedup import dedup_output
    from curate.models.download import check_models
    from curate.output.store import OutputStore, new_run_id

    t0 = time.perf_counter()
    check_models(config)
    if getattr(config, "text", None) is not None:
        from curate.models.text_detector import check_installed

        check_installed()
    stages = build_stages(config)
    run = _runner(runner, ray_address)
    params, models = model_record(config)
    summary = RunSummary(run_id=new_run_id(), output=output)
    if "://" not in output and os.path.exists(output) and not os.path.isdir(output):
        raise InputError(f"--output {output} is a file; OUTPUT must be a directory (new or from an earlier run)")
    # Inputs are read before OUTPUT is touched: a wrong path or an empty folder writes nothing.
    videos = list(discover(inputs, limit=limit))
    summary.inputs = len(videos)
    if not videos:
        log.warning("no input videos found in %s", ", ".join(inputs))
        summary.wall_s = time.perf_counter() - t0
        return summary
    with OutputStore.open(output, config, run_id=summary.run_id, schema_params=params, models=models) as store:
        finished = store.finished_ids()
        todo = [v for v in videos if v["video_id"] not in finished]
        summary.skipped = len(videos) - len(todo)
        log.info("run %s: %d inputs, %d already finished in %s, %d to process", summary.run_id, len(videos), summary.skipped, output, len(todo))
        if on_start:
            on_start(summary)
        pending = [v for v in todo if v["status"] == PENDING]
        for video in [v for v in todo if v["status"] != PENDING]:  # failed at discovery
            _commit(store, video, summary, on_video)
        if pending:
            if runner == "ray":
                from curate.runners.ray import init_ray

                summary.ray_init_s = init_ray(ray_address)
            for video in run(stages, pending):
                _commit(store, video, summary, on_video)
        store.commit()
        if config.dedup.enabled:
            summary.duplicates = dedup_output(store).duplicates
        store.close("completed")
    summary.wall_s = time.perf_counter() - t0
    return summary


def _commit(store: object, video: Record, summary: RunSummary, on_video: Callable[[Record, RunSummary], None] | None) -> None:
    if video.get("status") == PENDING:
        video["status"] = DONE
    store.add(video)  # type: ignore[attr-defined]
    clips = video.get("clips") or []
    kept = sum(1 for c in clips if not c.get("reject_reasons") and not c.get("flag_reasons"))
    summary.flagged += sum(1 for c in clips if not c.get("reject_reasons") and c.get("flag_reasons"))
    summary.processed += 1
    summary.status[video["status"]] = summary.status.get(video["status"], 0) + 1
    summary.clips += len(clips)
    summary.accepted += kept
    secs = sum((video.get("timings") or {}).values())
    detail = f"clips={len(clips)} kept={kept}" if video["status"] == DONE else video.get("reason") or ""
    log.info("%-8s %s  %s  %.1fs", video["status"], video["uri"], detail, secs)
    if on_video:
        on_video(video, summary)
