"""A small OUTPUT with flagged clips for the review tests (model-free runs flag nothing, so some are flagged here)."""

from __future__ import annotations

from pathlib import Path

from curate.config import PipelineConfig
from curate.output.rewrite import apply_changes, read_columns
from curate.output.store import OutputStore
from curate.run import run_pipeline
from tests.pipeline_helpers import make_inputs

FLAG = "clip_sim_mean 0.180 < pass_min 0.22"


def config() -> PipelineConfig:
    return PipelineConfig.model_validate({
        "limits": {"video_timeout_s": 60}, "clips": {"min_s": 1.0, "max_s": 4.0}, "output": {"shard_size_mb": 0.05},
        "dedup": {"score": "sharpness"}, "review": {"qa_accepted_rate": 1.0, "qa_rejected_rate": 1.0},
    })


def make_output(root: Path, flagged: int = 3) -> Path:
    """Run the model-free pipeline on 3 synthetic videos, then flag ``flagged`` accepted clips (one rewrite)."""
    make_inputs(root / "in", 3)
    out = root / "out"
    run_pipeline(config(), [str(root / "in")], str(out), runner="local")
    with OutputStore.open(str(out), config(), command="refilter") as store:
        ids = sorted(read_columns(store, ["clip_id"]).filter([t == "clips" for t in read_columns(store, ["clip_id"]).column("_table").to_pylist()]).column("clip_id").to_pylist())
        changes = {cid: {"flag_reasons": [FLAG], "caption_check": "flag", "caption_check_reason": FLAG} for cid in ids[:flagged]}
        apply_changes(store, changes, {"kind": "test-flag"})
    return out
