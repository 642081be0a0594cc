"""``curate review serve|apply|calibrate|export|import`` (mounted by :mod:`curate.cli`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

err = Console(stderr=True, soft_wrap=True)
DB_HELP = "Decisions database: a SQLAlchemy URL (postgresql+psycopg://user@host/db). Default: OUTPUT/_review/decisions.sqlite."


def _fail(message: object, code: int = 2) -> None:
    from rich.markup import escape

    err.print(f"[red]error:[/] {escape(str(message))}", highlight=False)
    raise typer.Exit(code)


def _doc(output: str) -> dict:
    from curate.output import manifest as mf
    from curate.output.shards import Location

    doc = mf.read(Location.of(output))
    if doc is None:
        _fail(f"{output}: no manifest.json; not a curate output (run `curate run` first)")
    return doc


def _url(output: str, db: str | None) -> str:
    from curate.review.db import default_url

    return db or os.environ.get("CURATE_REVIEW_DB") or default_url(output)


def _review_config(doc: dict, pipeline: Path | None, overrides: dict):
    """The ``review:`` settings: the OUTPUT's, replaced by PIPELINE.yaml's, replaced by command-line flags."""
    from curate.config import ConfigError, load_pipeline
    from curate.review.settings import ReviewConfig

    base = (doc.get("config") or {}).get("review") or {}
    if pipeline is not None:
        try:
            base = load_pipeline(pipeline).review.model_dump()
        except ConfigError as e:
            _fail(e)
    try:
        return ReviewConfig.model_validate({**base, **{k: v for k, v in overrides.items() if v is not None}})
    except ValueError as e:
        _fail(f"review settings: {e}")


def review_app() -> typer.Typer:
    app = typer.Typer(help="Annotator review: serve flagged and sampled clips, apply decisions, calibrate thresholds.",
                      no_args_is_help=True, rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]})

    @app.command()
    def serve(
        output: str = typer.Argument(..., metavar="OUTPUT", help="OUTPUT of a run."),
        db: Optional[str] = typer.Option(None, "--db", metavar="URL", help=DB_HELP),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Anything but loopback needs --token."),
        port: int = typer.Option(8765, "--port", min=0, max=65535),
        token: Optional[str] = typer.Option(None, "--token", envvar="CURATE_REVIEW_TOKEN", metavar="TOKEN",
                                            help="Access token every request must carry (annotators open /?token=TOKEN once)."),
        pipeline: Optional[Path] = typer.Option(None, "--pipeline", metavar="PIPELINE.yaml", help="Take the review: section from this pipeline."),
        qa_accepted_rate: Optional[float] = typer.Option(None, "--qa-accepted-rate", min=0, max=1, help="Share of accepted clips sampled for QA."),
        qa_rejected_rate: Optional[float] = typer.Option(None, "--qa-rejected-rate", min=0, max=1, help="Share of rejected clips sampled for QA."),
        double_review_rate: Optional[float] = typer.Option(None, "--double-review-rate", min=0, max=1, help="Share of queued clips reviewed by two people."),
        lease_s: Optional[float] = typer.Option(None, "--lease-s", min=1, help="Seconds a clip stays leased to an annotator."),
    ) -> None:
        """Start the review web app for OUTPUT (loopback only unless --token is given)."""
        import logging

        import uvicorn

        from curate.review.app import create_app, is_loopback
        from curate.review.db import open_db

        if not is_loopback(host) and not token:
            _fail(f"--host {host} is not a loopback address: anyone on the network could review; "
                  "give an access token (--token or CURATE_REVIEW_TOKEN), or bind 127.0.0.1")
        if token is not None and len(token) < 12:
            _fail("--token must be at least 12 characters")
        doc = _doc(output)
        cfg = _review_config(doc, pipeline, dict(qa_accepted_rate=qa_accepted_rate, qa_rejected_rate=qa_rejected_rate,
                                                  double_review_rate=double_review_rate, lease_s=lease_s))
        url = _url(output, db)
        try:
            engine = open_db(url)
        except Exception as e:  # noqa: BLE001 - an unreachable or unusable database: one line
            _fail(f"cannot open the decisions database {url}: {e}")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        app = create_app(output, engine, cfg, token)
        counts = app.state.queue.counts()
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        err.print(f"review {output}: {counts['left']} reviews to do ({counts['total']} in the queue); "
                  f"open http://{shown}:{port}/" + (f"?token={token}" if token else ""), highlight=False)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)

    @app.command("apply")
    def apply_cmd(
        output: str = typer.Argument(..., metavar="OUTPUT", help="OUTPUT of a run."),
        db: Optional[str] = typer.Option(None, "--db", metavar="URL", help=DB_HELP),
    ) -> None:
        """Write the decisions as a new version of the shards (kind review); applying twice changes nothing."""
        from curate.config import ConfigError
        from curate.output.lock import LockedError
        from curate.output.rewrite import RewriteError, describe_moves
        from curate.review.apply import apply_decisions

        _doc(output)
        try:
            r = apply_decisions(output, _url(output, db))
        except (ConfigError, LockedError, RewriteError) as e:
            _fail(e)
        if r.record is None:
            typer.echo(f"{r.verdicts} decided clip(s), all already applied; nothing written, {output} is unchanged")
            return
        rec = r.record
        typer.echo(f"review wrote shard version {r.version} of {output}: {r.changed} clip(s) from {r.verdicts} decision(s)")
        typer.echo(f"  moved:    {describe_moves(rec['moves']) or 'none'}; {rec['updated']} updated in place, {rec['encoded']} encoded")
        typer.echo(f"  captions: {len(rec.get('captions') or {})} by annotators")
        if r.missing:
            typer.echo(f"  {r.missing} decided clip(s) are no longer in the shards (another version removed them)")

    @app.command()
    def calibrate(
        output: str = typer.Argument(..., metavar="OUTPUT", help="OUTPUT of a run."),
        pipeline: Optional[Path] = typer.Argument(None, metavar="[PIPELINE.yaml]", help="Pipeline to start from (default: the OUTPUT's)."),
        db: Optional[str] = typer.Option(None, "--db", metavar="URL", help=DB_HELP),
        precision: float = typer.Option(0.9, "--precision", min=0.01, max=1.0, help="Target precision of the accepted set."),
        to: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE.yaml", help="Proposed pipeline (default: OUTPUT/review-calibrated.yaml)."),
    ) -> None:
        """Precision and throw-away per threshold, from the decisions; propose thresholds as a pipeline YAML."""
        from curate.review.calibrate import calibrate as run

        _doc(output)
        result = run(output, _url(output, db), pipeline, precision, to)
        typer.echo(result.summary())
        if not result.proposed:
            raise typer.Exit(1)

    @app.command("export")
    def export_cmd(
        output: str = typer.Argument(..., metavar="OUTPUT", help="OUTPUT of a run."),
        to: Path = typer.Option(..., "--output", "-o", metavar="FILE", help="File to write (.jsonl, .csv or .json for Label Studio)."),
        fmt: Optional[str] = typer.Option(None, "--format", metavar="jsonl|csv|labelstudio", help="Default: from the file name."),
        db: Optional[str] = typer.Option(None, "--db", metavar="URL", help=DB_HELP),
        base_url: str = typer.Option("http://127.0.0.1:8765", "--base-url", help="Where the review server serves clips (Label Studio video URLs)."),
    ) -> None:
        """Export the decision history (JSONL, CSV) or the queue as Label Studio tasks."""
        from curate.review import exchange

        fmt = fmt or exchange.format_of(to)
        n = exchange.export(output, _url(output, db), to, fmt, base_url)
        typer.echo(f"wrote {n} {'task' if fmt == 'labelstudio' else 'decision'}(s) to {to}")

    @app.command("import")
    def import_cmd(
        output: str = typer.Argument(..., metavar="OUTPUT", help="OUTPUT of a run."),
        source: Path = typer.Argument(..., metavar="FILE", help="Decisions (.jsonl, .csv) or a Label Studio export (.json)."),
        fmt: Optional[str] = typer.Option(None, "--format", metavar="jsonl|csv|labelstudio"),
        db: Optional[str] = typer.Option(None, "--db", metavar="URL", help=DB_HELP),
    ) -> None:
        """Append decisions from a file (rows already in the database are skipped)."""
        from curate.review import exchange

        fmt = fmt or exchange.format_of(source)
        try:
            added, skipped = exchange.import_(output, _url(output, db), source, fmt)
        except (ValueError, OSError) as e:
            _fail(e)
        typer.echo(f"imported {added} decision(s) from {source} ({skipped} already present)")

    return app


if __name__ == "__main__":
    sys.exit(review_app()())
