"""Command line: a thin typer layer over ``run_pipeline``, ``inspect``, ``shots``, ``validate``, ``report``, ``refilter``, ``latents``, ``models`` and ``review``."""

from __future__ import annotations

import enum
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
    rich_markup_mode=None,  # plain, conventional help: readable metavars, nothing boxed or wrapped mid-word
    context_settings={"help_option_names": ["-h", "--help"]},
)
# soft_wrap: never insert line breaks (paths and URLs stay whole when copied or piped to a file).
err = Console(stderr=True, soft_wrap=True)

def _fail(message: object, code: int = 2) -> None:
    """Print ``error: MESSAGE`` (brackets in paths are text, not markup) and exit with ``code``."""
    from rich.markup import escape

    err.print(f"[red]error:[/] {escape(str(message))}", highlight=False)
    raise typer.Exit(code)


def _interrupt_caused(e: BaseException) -> bool:
    """A Ctrl-C that landed inside an import or a native call can surface as another error with the
    KeyboardInterrupt as its cause (onnxruntime's ``ImportError: initialization failed``): an interrupt, not a bug."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_DATEFMT = "%Y-%m-%d %H:%M:%S"


class Runner(str, enum.Enum):
    ray = "ray"
    local = "local"


models_app = typer.Typer(help="Model weights: download them for offline runs.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("download")
def models_download(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML whose models to fetch."),
    to: Path = typer.Option(..., "--output", "-o", "--to", metavar="DIR", help="Directory to fill; pass it as --models-dir (models.dir) offline."),
) -> None:
    """Download every model PIPELINE uses into DIR (run on a connected machine)."""
    from curate.config import ConfigError, load_pipeline
    from curate.models.download import download_models, offline_advice
    from curate.models.hub import ModelUnavailable

    try:
        config = load_pipeline(pipeline)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    try:
        download_models(config, to, log=typer.echo)
    except ModelUnavailable as e:
        if e.no_network:
            typer.echo(offline_advice(pipeline, config, to, e.detail), err=True)
        else:
            typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"done; on the offline machine set models.dir: {to} or pass --models-dir {to}")


def _mount_review() -> None:
    from curate.review.cli import review_app

    app.add_typer(review_app(), name="review")


_mount_review()


def _print_version(value: bool) -> None:
    if value:
        from curate.output.manifest import curate_version

        typer.echo(f"curate {curate_version()}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print curate's version and exit."),
) -> None:
    """curate: raw videos -> shot clips -> scores -> Parquet shards (on Ray or in-process)."""


class _LogFile(logging.FileHandler):
    """A run's log file in OUTPUT/logs/, created only once the run has created OUTPUT.

    Lines logged before that (discovery warnings) are held and written first,
    so a run refused before any work leaves nothing behind.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, delay=True)
        self._output = path.parent.parent
        self._early: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None and not self._output.is_dir():
            self._early.append(record)
            return
        early, self._early = self._early, []
        for r in early:
            super().emit(r)
        super().emit(record)

    def _open(self):  # noqa: ANN202 - logging's own signature
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def _log_traceback(error: BaseException) -> None:
    """Write ``error``'s traceback to the run's log file only: the terminal gets one sentence."""
    record = logging.LogRecord("curate", logging.ERROR, __file__, 0, "run stopped by %r", (error,), (type(error), error, error.__traceback__))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _LogFile):
            handler.handle(record)


def _setup_logging(verbose: bool, log_file: Path | None) -> None:
    """One format (time, level, message) for the log file and for stderr when it is not a terminal.

    On a terminal a live bar shows progress, so only warnings print unless
    ``verbose``; piped to a file, every video gets its line.
    """
    from rich.logging import RichHandler

    plain = logging.Formatter(LOG_FORMAT, LOG_DATEFMT)
    if err.is_terminal:
        screen: logging.Handler = RichHandler(console=err, show_path=False, log_time_format=f"[{LOG_DATEFMT}]")
        screen.setLevel(logging.INFO if verbose else logging.WARNING)
    else:
        screen = logging.StreamHandler(sys.stderr)
        screen.setFormatter(plain)
        screen.setLevel(logging.DEBUG if verbose else logging.INFO)
    handlers: list[logging.Handler] = [screen]
    if log_file is not None:
        fh = _LogFile(log_file)
        fh.setFormatter(plain)
        fh.setLevel(logging.INFO)
        handlers.append(fh)
    # A log line that cannot be written (disk full) must not print a traceback of its own.
    logging.raiseExceptions = False
    # Libraries log at WARNING and above; curate's own INFO lines are the per-video log.
    logging.basicConfig(level=logging.WARNING, handlers=handlers, force=True)
    logging.getLogger("curate").setLevel(logging.DEBUG if verbose else logging.INFO)


@app.command()
def run(
    pipeline: Path = typer.Argument(..., metavar="PIPELINE.yaml", help="Pipeline YAML (see pipelines/)."),
    input: list[str] = typer.Option(..., "--input", "-i", metavar="PATH|GLOB|URI", help="Directory, glob, video file, or manifest (.csv/.jsonl/.parquet with a 'uri' column). Local path or fsspec URI (s3://, gs://). Repeatable."),
    output: str = typer.Option(..., "--output", "-o", metavar="OUTPUT", help="OUTPUT directory or URI. Rerunning the same command on the same OUTPUT resumes."),
    runner: Runner = typer.Option(Runner.ray, "--runner", help="ray: actor pools (embedded local Ray unless --ray-address); local: in-process, for debugging."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", metavar="ADDRESS", envvar="RAY_ADDRESS", help="Join this Ray cluster instead of starting a local one. Inputs and OUTPUT must then be reachable from every node."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, metavar="N", help="Process at most N inputs (a trial run)."),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", metavar="DIR", help="Model weights fetched with `curate models download` (overrides models.dir)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every video on the terminal too (always in OUTPUT/logs/, and on stderr when it is not a terminal)."),
) -> None:
    """Curate videos into clip shards: probe, split, score, caption, filter, encode, write, dedup.

    With a latents: section the accepted clips' VAE latents are computed too, from the frames encode decodes
    (docs/latents.md); `curate latents` later fills in only what is missing.
    """
    from curate.config import ConfigError
    from curate.config_diff import OutputMismatch
    from curate.discover import InputError
    from curate.models.hub import ModelUnavailable
    from curate.output.lock import LockedError
    from curate.output.rewrite import RewriteError
    from curate.run import run_pipeline
    from curate.stderr_filter import filtered_native_stderr

    config = _load(pipeline, models_dir)
    try:  # before anything is written, OUTPUT/logs included; run_pipeline checks again (cheap once cached)
        from curate.models.download import check_models

        check_models(config)
    except ModelUnavailable as e:
        from curate.models.download import missing_models_message

        _fail(missing_models_message(pipeline, config, e))
    log_file = None if "://" in output else Path(output) / "logs" / f"run-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    _setup_logging(verbose, log_file)
    progress = _Progress()
    interrupted = f"interrupted. Videos committed so far are safe in {output}; rerun the same command to resume."
    try:
        with filtered_native_stderr():
            try:
                summary = run_pipeline(config, input, output, runner=runner.value, ray_address=ray_address, limit=limit,
                                       on_start=progress.start, on_video=progress.advance)
            finally:
                progress.stop()
    except OutputMismatch as e:
        _fail(f"{e}\n  curate refilter {output} {pipeline}" if e.refilter else e)
    except (InputError, ConfigError, LockedError, ModelUnavailable, RewriteError) as e:
        _fail(e)
    except KeyboardInterrupt:
        _fail(interrupted, code=130)
    except Exception as e:  # noqa: BLE001 - an interrupt, a full disk, or a bug: one line here, the traceback in the run log
        if _interrupt_caused(e):
            _fail(interrupted, code=130)
        _log_traceback(e)
        if isinstance(e, OSError):
            where = f" ({e.filename})" if e.filename else ""
            _fail(f"cannot write {output}: {e.strerror or e}{where}. Videos committed so far are safe; "
                  f"fix this and rerun the same command to resume.", code=1)
        _fail(f"internal error: {type(e).__name__}: {e}. The traceback is in {log_file or 'the log'}; "
              f"videos committed so far are safe, and rerunning the same command resumes.", code=1)
    if summary.inputs == 0:
        from rich.markup import escape

        err.print(f"[yellow]warning:[/] no input videos found in {escape(', '.join(input))}; nothing was written", highlight=False)
        return
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(summary.status.items())) or "none"
    err.print(
        f"run {summary.run_id}: {summary.inputs} inputs ({summary.skipped} already finished), "
        f"{summary.processed} processed ({statuses}); clips {summary.accepted} kept of {summary.clips}, "
        f"{summary.flagged} flagged, {summary.duplicates} duplicates in OUTPUT; "
        f"{summary.wall_s:.1f}s" + (f" (ray start {summary.ray_init_s:.1f}s)" if summary.ray_init_s else ""),
        highlight=False,
    )
    err.print(f"output: {output}   next: curate inspect {output}  /  curate report {output}", highlight=False)


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
    output: str = typer.Argument(..., metavar="OUTPUT", help="OUTPUT of a run."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Counts, funnel (inputs -> done/rejected/failed; clips -> kept/rejected per reason) and score summaries."""
    from curate.inspect import render, summarize

    try:
        summary = summarize(output)
    except (FileNotFoundError, ValueError) as e:  # no or unreadable manifest: one line, no traceback
        err.print(f"[red]error:[/] {e}", soft_wrap=True, highlight=False)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(summary, indent=1, default=str))
    else:
        Console().print(render(summary))


@app.command()
def shots(
    output: str = typer.Argument(..., metavar="OUTPUT", help="OUTPUT of a run."),
    video: Optional[str] = typer.Option(None, "--video", metavar="TEXT", help="Only videos whose id or path contains "
                                        "TEXT, each with its transitions and re-planned clips."),
    min_s: Optional[float] = typer.Option(None, "--min-s", metavar="S", help="Re-plan with this shortest clip (default: the run's clips.min_s)."),
    max_s: Optional[float] = typer.Option(None, "--max-s", metavar="S", help="Re-plan with this longest clip (default: the run's clips.max_s)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Each video's shot list from videos.parquet: shots, cuts, gradual transitions, suppressed flashes, and the
    clips they give, re-planned without decoding (other clip lengths: --min-s/--max-s)."""
    from curate.shot_list import render, summarize

    try:
        summary = summarize(output, video, min_s, max_s)
    except (FileNotFoundError, ValueError) as e:
        _fail(e)
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
    else:
        Console(soft_wrap=True).print(render(summary))


@app.command()
def validate(
    output: str = typer.Argument(..., metavar="OUTPUT", help="OUTPUT of a run."),
    decode: bool = typer.Option(False, "--decode", help="Also decode every stored clip: exactly num_frames frames "
                                "of the row's size spanning duration_s (slow: one decode per clip)."),
) -> None:
    """Check schema, manifest, shard readability, unique clip ids and consistent counts. Prints the verdict; exit 1 on problems."""
    from rich.markup import escape

    from curate.validate import validate as check

    out = Console(soft_wrap=True)
    problems = check(output, decode=decode)
    for p in problems:
        out.print(f"[red]problem:[/] {escape(str(p))}", highlight=False)
    if not problems:
        from curate.validate import stale_inputs

        for note in stale_inputs(output):
            out.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if problems:
        out.print(f"{len(problems)} problem(s) in {escape(output)}", highlight=False)
        raise typer.Exit(1)
    out.print(f"[green]ok:[/] {escape(output)} is valid", highlight=False)


@app.command()
def report(
    output: str = typer.Argument(..., metavar="OUTPUT", help="OUTPUT of a run."),
    html: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE.html", help="HTML file to write (default: OUTPUT/report.html)."),
) -> None:
    """Write a self-contained HTML page: funnel, score histograms with thresholds, contact sheets, timings."""
    from curate.report import write_report

    try:
        path = write_report(output, html)
    except FileNotFoundError as e:
        _fail(e)
    err.print(f"report: {path}", highlight=False)


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
    from curate.output.rewrite import describe_moves
    from curate.refilter import describe_changes, threshold_changes

    def _clips(n: int) -> str:
        return f"{n:,} clip" + ("" if n == 1 else "s")

    if result.record is None:
        typer.echo(f"no clip's decision changes under {pipeline}; nothing written, {output} is unchanged")
        return
    r = result.record
    c = result.clips or {}
    lines = [f"refilter wrote shard version {result.version} of {output}",
             f"  thresholds: {describe_changes(threshold_changes(r.get('before'), r['thresholds'])) or 'unchanged'}",
             f"  moved:      {describe_moves(r['moves']) or 'none'} ({_clips(result.changed)}"
             + (f", {r['encoded']:,} encoded from their source)" if r["encoded"] else ")")]
    if result.updated:
        lines.append(f"  updated:    {_clips(result.updated)} with other reasons, not moved")
    lines.append(f"  now:        {c.get('accepted', 0):,} kept, {c.get('flagged', 0):,} flagged, {c.get('rejected', 0):,} dropped"
                 f" ({result.duplicates:,} as duplicates)")
    if "://" not in output and (Path(output) / "report.html").is_file():
        lines.append(f"  {output}/report.html is now stale: curate report {output}")
    typer.echo("\n".join(lines))


@app.command()
def latents(
    output: str = typer.Argument(..., help="OUTPUT of a run."),
    pipeline: Path = typer.Argument(..., help="The run's pipeline plus a latents section (VAE, buckets) and/or a text_embeddings section."),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", metavar="DIR", help="VAE and text-encoder weights fetched with `curate models download` (overrides models.dir)."),
) -> None:
    """Add VAE latents and caption embeddings of the kept clips as new versions (resumable: what is there and current is skipped).

    Latents a run computed (its pipeline had the latents section) are there already: only clips without them are encoded.
    """
    from curate.config import ConfigError
    from curate.latents import add_latents
    from curate.models.hub import ModelUnavailable
    from curate.models.text_encoder import encoder_info
    from curate.output.lock import LockedError
    from curate.text_embeddings import add_text_embeddings

    config = _load(pipeline, models_dir)
    _setup_logging(False, None)
    lines = []
    try:
        if config.latents is None and config.text_embeddings is None:
            raise ConfigError(f"{pipeline} has neither a latents nor a text_embeddings section: nothing to compute")
        if config.text_embeddings is not None:  # every model's weights before any input (the VAE's: add_latents)
            encoder_info(config.text_embeddings.encoder, config.models)
        if config.latents is not None:
            r = add_latents(output, config)
            lines.append(f"latents of VAE {r.vae} in {output}: {r.computed:,} computed, {r.skipped:,} already there, "
                         f"{r.commits} commit(s), {r.seconds:.1f}s")
            if r.unfit:
                lines.append(f"  {r.unfit:,} kept clip(s) fit no bucket (too short or too small)")
            if r.failed:
                lines.append(f"  {len(r.failed):,} clip(s) did not decode (rerun to retry): {', '.join(r.failed[:5])}")
        if config.text_embeddings is not None:
            t = add_text_embeddings(output, config)
            lines.append(f"caption embeddings of encoder {t.encoder} in {output}: {t.computed:,} computed ({t.replaced:,} for a "
                         f"changed caption), {t.skipped:,} current, {t.commits} commit(s), {t.seconds:.1f}s")
            if t.uncaptioned:
                lines.append(f"  {t.uncaptioned:,} kept clip(s) have no caption")
    except ModelUnavailable as e:
        _fail(f"{e}\n  curate models download {pipeline} --output DIR   # then: --models-dir DIR")
    except (ConfigError, LockedError) as e:
        _fail(e)
    except BaseException as e:  # a Ctrl-C, also one that surfaced inside an import as another error (_interrupt_caused)
        if not _interrupt_caused(e):
            raise
        _fail(f"interrupted. What was committed so far is safe in {output}; rerun the same command to resume.", code=130)
    typer.echo("\n".join(lines))


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
