"""Command line: a thin typer layer over ``run_pipeline``, ``inspect``, ``validate``, ``report``, ``refilter`` and ``models``."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(
    help="curate: raw videos -> shot clips -> scores -> Parquet shards (on Ray or in-process).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _mount_models() -> None:
    from curate.models.download import models_app

    app.add_typer(models_app(), name="models")


_mount_models()


def _setup_logging(verbose: bool, log_file: Path | None) -> None:
    from rich.logging import RichHandler

    handlers: list[logging.Handler] = [RichHandler(console=err, show_path=False, level=logging.INFO if verbose else logging.WARNING)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh.setLevel(logging.INFO)
        handlers.append(fh)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)


@app.command()
def run(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (see pipelines/)."),
    input: list[str] = typer.Option(..., "--input", "-i", help="Directory, glob, video file, or manifest (.csv/.jsonl/.parquet with a 'uri' column). Local path or fsspec URI (s3://, gs://). Repeatable."),
    output: str = typer.Option(..., "--output", "-o", help="OUTPUT directory or URI. Rerunning on the same OUTPUT resumes."),
    runner: str = typer.Option("ray", help="'ray' (actor pools; embedded local Ray unless --ray-address) or 'local' (in-process, for debugging)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS", help="Join this Ray cluster instead of starting a local one. Inputs and OUTPUT must then be reachable from every node."),
    limit: Optional[int] = typer.Option(None, min=1, help="Process at most N inputs (a trial run)."),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help="Model weights fetched with `curate models download` (overrides models.dir)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every video to the terminal (always logged to OUTPUT/logs/)."),
) -> None:
    """Curate videos into clip shards: probe, split, score, caption, filter, encode, write, dedup."""
    from curate.config import ConfigError
    from curate.discover import InputError
    from curate.models.hub import ModelUnavailable
    from curate.output.lock import LockedError
    from curate.output.rewrite import RewriteError
    from curate.run import RUNNERS, run_pipeline

    if runner not in RUNNERS:
        raise typer.BadParameter(f"choose one of {', '.join(RUNNERS)}", param_hint="--runner")
    config = _load(pipeline, models_dir)
    try:  # before anything is written, OUTPUT/logs included; run_pipeline checks again (cheap once cached)
        from curate.models.download import check_models

        check_models(config)
    except ModelUnavailable as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2)
    log_file = None if "://" in output else Path(output) / "logs" / f"run-{os.getpid()}-{int(time.time())}.log"
    _setup_logging(verbose, log_file)
    progress = _Progress()
    try:
        summary = run_pipeline(config, input, output, runner=runner, ray_address=ray_address, limit=limit, on_start=progress.start, on_video=progress.advance)
    except (InputError, ConfigError, LockedError, ModelUnavailable, RewriteError) as e:
        progress.stop()
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2)
    finally:
        progress.stop()
    err.print(
        f"run {summary.run_id}: {summary.inputs} inputs ({summary.skipped} already finished), "
        f"{summary.processed} processed {summary.status}, clips {summary.accepted}/{summary.clips} kept, "
        f"{summary.flagged} flagged, {summary.duplicates} duplicates in OUTPUT, "
        f"{summary.wall_s:.1f}s" + (f" (ray start {summary.ray_init_s:.1f}s)" if summary.ray_init_s else "")
    )
    err.print(f"output: {output}   next: curate inspect {output}  /  curate report {output}")


def _load(pipeline: Path, models_dir: Path | None = None):  # noqa: ANN202 - PipelineConfig, imported lazily
    """The validated pipeline (``models.dir`` replaced by ``models_dir``), or exit 2 naming the field."""
    from curate.config import ConfigError, load_pipeline

    try:
        config = load_pipeline(pipeline)
    except ConfigError as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2)
    if models_dir is not None:
        config = config.model_copy(update={"models": config.models.model_copy(update={"dir": models_dir})})
    return config


class _Progress:
    """A rich progress bar of videos, with clip counts, shown while a run works."""

    def __init__(self) -> None:
        self._bar = None
        self._task = None

    def start(self, summary) -> None:  # noqa: ANN001 - RunSummary
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("[bold]videos"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False, disable=not err.is_terminal and not os.environ.get("CURATE_PROGRESS"),
        )
        self._bar.start()
        self._task = self._bar.add_task("clips 0 kept / 0", total=summary.inputs - summary.skipped)

    def advance(self, video, summary) -> None:  # noqa: ANN001
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=f"clips {summary.accepted} kept / {summary.clips}")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@app.command()
def inspect(
    output: str = typer.Argument(..., help="OUTPUT of a run."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Counts, funnel (inputs -> done/rejected/failed; clips -> kept/rejected per reason) and score summaries."""
    from curate.inspect import render, summarize

    summary = summarize(output)
    if as_json:
        typer.echo(json.dumps(summary, indent=1, default=str))
    else:
        Console().print(render(summary))


@app.command()
def validate(
    output: str = typer.Argument(..., help="OUTPUT of a run."),
    decode: bool = typer.Option(False, "--decode", help="Also decode every stored clip: exactly num_frames frames "
                                "of the row's size spanning duration_s (slow: one decode per clip)."),
) -> None:
    """Check schema, manifest, shard readability, unique clip ids and consistent counts. Exit 1 on problems."""
    from curate.validate import validate as check

    problems = check(output, decode=decode)
    if problems:
        for p in problems:
            err.print(f"[red]problem:[/] {p}")
        raise typer.Exit(1)
    err.print(f"[green]ok:[/] {output} is valid")


@app.command()
def report(
    output: str = typer.Argument(..., help="OUTPUT of a run."),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default: OUTPUT/report.html)."),
) -> None:
    """Write a self-contained HTML page: funnel, score histograms with thresholds, contact sheets, timings."""
    from curate.report import write_report

    try:
        path = write_report(output, out)
    except FileNotFoundError as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2)
    err.print(f"report: {path}")


@app.command()
def refilter(
    output: str = typer.Argument(..., help="OUTPUT of a run."),
    pipeline: Path = typer.Argument(..., help="The run's pipeline with new thresholds (filter, caption_check bands, dedup)."),
) -> None:
    """Decide every clip again from its stored scores and write a new version of the shards (no analysis decode)."""
    from curate.config import ConfigError
    from curate.output.lock import LockedError
    from curate.output.rewrite import RewriteError
    from curate.refilter import refilter as apply

    config = _load(pipeline)
    _setup_logging(False, None)
    try:
        result = apply(output, config)
    except (ConfigError, LockedError, RewriteError) as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2)
    if result.record is None:
        err.print(f"no decision changed; {output} is unchanged")
    else:
        r = result.record
        err.print(f"version {r['part']}: {result.changed} clip(s) changed {r['moves']}, {r['encoded']} encoded from source, "
                  f"{result.duplicates} duplicates")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
