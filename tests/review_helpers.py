"""A small OUTPUT with flagged clips for the review tests (model-free runs flag nothing, so some are flagged here)."""

from __future__ import annotations

from pathlib import Path

from curate.config import PipelineConfig
from curate.output.rewrite import apply_changes, read_columns
from curate.output.store import OutputStore
from curate.records import reason
from curate.run import run_pipeline
from tests.pipeline_helpers import make_inputs

FLAG_DETAIL = "clip_sim_mean 0.180 < pass_min 0.22"
FLAG = reason("pass_min", FLAG_DETAIL)


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
        changes = {cid: {"flag_reasons": [FLAG], "caption_check": "flag", "caption_check_reason": FLAG_DETAIL} for cid in ids[:flagged]}
        apply_changes(store, changes, {"kind": "test-flag"})
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """The app on a real uvicorn server in a thread (``with LiveServer(app) as base_url``)."""

    def __init__(self, app) -> None:  # noqa: ANN001 - a FastAPI app
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = None

    def __enter__(self) -> str:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.server.should_exit = True
        self.thread.join(timeout=20)


def app_for(out: Path, url: str, token: str | None = None, **review):  # noqa: ANN201 - FastAPI
    """The app over ``out`` with every clip queued (QA rates 1) unless ``review`` says otherwise."""
    from curate.review.app import create_app
    from curate.review.db import open_db
    from curate.review.settings import ReviewConfig

    cfg = ReviewConfig.model_validate({"qa_accepted_rate": 1.0, "qa_rejected_rate": 1.0, **review})
    return create_app(str(out), open_db(url), cfg, token)
