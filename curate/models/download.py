"""The models of a pipeline: check them before a run, download them for an offline one.

``curate models download PIPELINE.yaml --to DIR`` fills DIR with the same
cache layout the loaders read (Hugging Face hub cache, ``aesthetic/`` for
heads fetched by URL), so ``models.dir: DIR`` / ``--models-dir DIR`` on the
offline machine finds everything without network.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curate.models.hub import ModelUnavailable, is_offline
from curate.models.settings import ModelsConfig

Check = tuple[str, Callable[[ModelsConfig, bool], Any]]


def _clip_tokenizer(clip_cfg: Any, arch: str) -> str | None:
    """The Hugging Face tokenizer repo an open_clip model with an HF text tower needs, if any."""
    import open_clip

    if arch.startswith("local-dir:"):
        conf = json.loads((Path(arch[len("local-dir:"):]) / "open_clip_config.json").read_text())["model_cfg"]
    else:
        conf = open_clip.get_model_config(arch) or {}
    return conf.get("text_cfg", {}).get("hf_tokenizer_name")


def required(config: Any) -> list[Check]:
    """``(name, fetch(models, download))`` for every model ``config`` uses.

    ``config`` is a ``PipelineConfig``; its optional sections ``clip``,
    ``aesthetic`` and ``caption`` decide which models are needed.
    """
    from curate.models import aesthetic, captioners, clip

    out: list[Check] = []
    c, a, cap = getattr(config, "clip", None), getattr(config, "aesthetic", None), getattr(config, "caption", None)
    if c is not None and not c.random_init:
        out.append((f"clip {c.model}", lambda m, d: clip.resolve(c, m, download=d)))
    if a is not None:
        out.append((f"aesthetic head {a.head}", lambda m, d: aesthetic.resolve_head(a, m, download=d)))
    if cap is not None and cap.kind == "transformers":
        out.append((f"captioner {cap.model}", lambda m, d: captioners.transformers_source(cap, m, download=d)))
    return out


def check_models(config: Any) -> None:
    """Raise one :class:`ModelUnavailable` naming every model that cannot be had; loads nothing."""
    models = getattr(config, "models", None) or ModelsConfig()
    failures = []
    for _, fetch in required(config):
        try:
            fetch(models, False)
        except ModelUnavailable as e:
            failures.append(e)
    if failures:
        detail = "; ".join(str(e).split("\n")[0].removeprefix("model ") for e in failures)
        raise ModelUnavailable(", ".join(e.model for e in failures), detail)


def download_models(config: Any, to: Path, log: Callable[[str], None] = print) -> list[str]:
    """Fetch every model of ``config`` into ``to``; returns what was fetched (local paths or ids)."""
    if is_offline(ModelsConfig()):
        raise ModelUnavailable("(all)", "HF_HUB_OFFLINE is set; `curate models download` needs network")
    from huggingface_hub import snapshot_download

    models = ModelsConfig(dir=Path(to))
    done = []
    for name, fetch in required(config):
        log(f"fetching {name} ...")
        got = fetch(models, True)
        if name.startswith("clip "):
            tok = _clip_tokenizer(config.clip, got.arch)
            if tok:
                snapshot_download(tok, cache_dir=str(to), allow_patterns=["*.json", "*.txt", "*.model"])
            got = got.weights or got.arch
        elif name.startswith("captioner ") and not Path(got).is_dir():
            cap = config.caption
            got = snapshot_download(got, cache_dir=str(to), revision=cap.revision)
        done.append(f"{name}: {got}")
        log(f"  -> {got}")
    return done


def models_app() -> Any:
    """The ``curate models`` Typer sub-app (the CLI mounts it with ``add_typer(..., name="models")``)."""
    import typer

    app = typer.Typer(help="Model weights: download them for offline runs.", no_args_is_help=True)

    @app.command()
    def download(
        pipeline: Path = typer.Argument(..., help="Pipeline YAML whose models to fetch."),
        to: Path = typer.Option(..., "--to", help="Directory to fill; pass it as --models-dir (models.dir) offline."),
    ) -> None:
        """Download every model PIPELINE uses into DIR (run on a connected machine)."""
        from curate.config import load_pipeline

        try:
            download_models(load_pipeline(pipeline), to, log=typer.echo)
        except ModelUnavailable as e:
            typer.echo(str(e), err=True)
            raise typer.Exit(2) from e
        typer.echo(f"done; on the offline machine set models.dir: {to} or pass --models-dir {to}")

    return app
