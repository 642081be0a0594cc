"""The models of a pipeline: check them before a run, download them for an offline one.

``curate models download PIPELINE.yaml --output DIR`` fills DIR with the same
cache layout the loaders read (Hugging Face hub cache, ``aesthetic/`` for
heads fetched by URL), so ``models.dir: DIR`` / ``--models-dir DIR`` on the
offline machine finds everything without network.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curate.models.hub import ModelUnavailable, hub_endpoint, is_offline, unreachable
from curate.models.settings import ModelsConfig

Check = tuple[str, Callable[[ModelsConfig, bool], Any]]


class MissingModels(ModelUnavailable):
    """Every model of a pipeline that cannot be had (``failures``), raised by :func:`check_models`."""

    def __init__(self, failures: list[ModelUnavailable]) -> None:
        self.failures = failures
        super().__init__(", ".join(e.model for e in failures), "; ".join(e.detail for e in failures),
                         no_network=any(e.no_network for e in failures))


def _hub_folder(repo: str) -> str:
    """The folder a Hugging Face cache keeps ``repo`` in (``models--org--name``)."""
    return "models--" + repo.replace("/", "--")


def layout(config: Any) -> list[tuple[str, str]]:
    """``(where, what)`` for every file or folder the models of ``config`` need; loads and fetches nothing.

    ``where`` is relative to the models dir (what `curate models download --output DIR`
    fills, with the same layout) or an absolute path the pipeline names itself.
    """
    import open_clip

    from curate.models.clip import _weight_names

    out: list[tuple[str, str]] = []
    c, a, cap = getattr(config, "clip", None), getattr(config, "aesthetic", None), getattr(config, "caption", None)
    if c is not None and not c.random_init:
        label = f"CLIP {c.model}" + (f" ({c.pretrained})" if c.pretrained else "")
        arch = c.model.replace("/", "-")
        if c.model.startswith("local-dir:"):
            out.append((c.model[len("local-dir:"):], f"{label}: open_clip_config.json and weights"))
        elif c.model.startswith("hf-hub:"):
            out.append((_hub_folder(c.model[len("hf-hub:"):]) + "/", f"{label}: open_clip_config.json, weights, tokenizer"))
        elif c.pretrained:
            tag = open_clip.get_pretrained_cfg(arch, c.pretrained)
            if tag and tag.get("hf_hub"):
                repo, filename = tag["hf_hub"].rstrip("/"), ""
                if repo.count("/") > 1:
                    repo, filename = repo.rsplit("/", 1)
                out.append((_hub_folder(repo) + "/", f"{label} weights: {' or '.join(_weight_names(filename))}"))
            elif tag and tag.get("url"):
                out.append(("open_clip/" + Path(tag["url"].split("?")[0]).name, f"{label} weights"))
            elif c.pretrained.startswith("hf-hub:"):
                repo, _, filename = c.pretrained[len("hf-hub:"):].rpartition("/")
                out.append((_hub_folder(repo) + "/", f"{label} weights: {filename}"))
            else:
                out.append((str(Path(c.pretrained).resolve()), f"{label} checkpoint"))
        if not c.model.startswith("local-dir:"):
            try:
                tok = _clip_tokenizer(c, arch)
            except (OSError, KeyError, ValueError):
                tok = None
            if tok:
                out.append((_hub_folder(tok) + "/", f"tokenizer {tok} of {label}"))
    if a is not None:
        if a.head.startswith(("http://", "https://")):
            out.append(("aesthetic/" + Path(a.head.split("?")[0]).name, f"aesthetic head, from {a.head}"))
        else:
            out.append((str(Path(a.head).resolve()), "aesthetic head"))
    lat = getattr(config, "latents", None)
    if lat is not None and not lat.vae.random_init:
        v = lat.vae
        sub = f"{v.subfolder}/" if v.subfolder else ""
        if Path(v.model).expanduser().exists() or v.model.startswith((".", "/", "~")):
            out.append((str(Path(v.model).expanduser().resolve()), f"VAE {v.id}: {sub}config.json and weights (save_pretrained)"))
        else:
            out.append((_hub_folder(v.model) + "/", f"VAE {v.id} ({v.kind}): {sub}config.json and weights"))
    te = getattr(config, "text_embeddings", None)
    if te is not None and not te.encoder.random_init:
        e = te.encoder
        if Path(e.model).expanduser().exists() or e.model.startswith((".", "/", "~")):
            out.append((str(Path(e.model).expanduser().resolve()), f"text encoder {e.id}: config.json, weights and tokenizer (save_pretrained)"))
        else:
            out.append((_hub_folder(e.model) + "/", f"text encoder {e.id} ({e.kind}): config.json, weights and tokenizer"))
    if cap is not None and cap.kind == "transformers" and cap.model:
        local = Path(cap.model).expanduser()
        if local.exists() or cap.model.startswith((".", "/", "~")):
            out.append((str(local.resolve()), f"captioner {cap.model} (saved with save_pretrained)"))
        else:
            out.append((_hub_folder(cap.model) + "/", f"captioner {cap.model}"))
    return out


def describe_layout(config: Any, models_dir: Path | str) -> str:
    """:func:`layout` as indented lines with full paths under ``models_dir``."""
    lines = []
    for where, what in layout(config):
        full = where if Path(where).is_absolute() else f"{Path(models_dir) / where}{'/' if where.endswith('/') else ''}"
        lines.append(f"  {full}   ({what})")
    return "\n".join(lines) or "  (no model files: this pipeline needs no weights)"


def _clip_tokenizer(clip_cfg: Any, arch: str) -> str | None:
    """The Hugging Face tokenizer repo an open_clip model with an HF text tower needs, if any."""
    import open_clip

    if arch.startswith("local-dir:"):
        conf = json.loads((Path(arch[len("local-dir:"):]) / "open_clip_config.json").read_text())["model_cfg"]
    else:
        conf = open_clip.get_model_config(arch) or {}
    return conf.get("text_cfg", {}).get("hf_tokenizer_name")


def required(config: Any, text_embeddings: bool = True) -> list[Check]:
    """``(name, fetch(models, download))`` for every model ``config`` uses.

    ``config`` is a ``PipelineConfig``; its optional sections ``clip``,
    ``aesthetic``, ``caption``, ``latents`` and ``text_embeddings`` decide which models are needed.
    ``text_embeddings=False`` leaves out the text encoder: ``curate run`` computes latents
    (the VAE is checked with the other models) but not caption embeddings.
    """
    from curate.models import aesthetic, captioners, clip, text_encoder, vae

    out: list[Check] = []
    c, a, cap = getattr(config, "clip", None), getattr(config, "aesthetic", None), getattr(config, "caption", None)
    if c is not None and not c.random_init:
        out.append((f"clip {c.model}", lambda m, d: clip.resolve(c, m, download=d)))
    if a is not None:
        out.append((f"aesthetic head {a.head}", lambda m, d: aesthetic.resolve_head(a, m, download=d)))
    if cap is not None and cap.kind == "transformers":
        out.append((f"captioner {cap.model}", lambda m, d: captioners.transformers_source(cap, m, download=d)))
    lat = getattr(config, "latents", None)
    if lat is not None:
        out.append((f"vae {lat.vae.id}", lambda m, d: vae.resolve(lat.vae, m, download=d)))
    te = getattr(config, "text_embeddings", None)
    if text_embeddings and te is not None:
        out.append((f"text encoder {te.encoder.id}", lambda m, d: text_encoder.resolve(te.encoder, m, download=d)))
    return out


def check_models(config: Any) -> None:
    """Raise one :class:`ModelUnavailable` naming every model a run needs that cannot be had; loads nothing."""
    models = getattr(config, "models", None) or ModelsConfig()
    failures = []
    for _, fetch in required(config, text_embeddings=False):
        try:
            fetch(models, False)
        except ModelUnavailable as e:
            failures.append(e)
    if failures:
        raise MissingModels(failures)


def missing_models_message(pipeline: Path | str, config: Any, error: ModelUnavailable, models_dir: Path | None = None) -> str:
    """What `curate run` prints when weights are missing: which, why, and the commands that fix it, with real paths.

    ``models_dir`` is where the weights should go (``--models-dir``/``models.dir``,
    else ``./models``). Meant to be printed without wrapping (URLs stay whole).
    """
    failures = error.failures if isinstance(error, MissingModels) else [error]
    target = Path(models_dir or getattr(getattr(config, "models", None), "dir", None) or "models").resolve()
    lines = [f"{pipeline} needs model weights that this machine does not have:"]
    lines += [f"  - {e.model}: {e.detail}" for e in failures]
    lines += [
        "To run it, fetch the weights on a machine with network:",
        f"  curate models download {pipeline} --output {target}",
        f"copy {target} to this machine (same path, or pass the new one), then run again with:",
        f"  curate run {pipeline} --models-dir {target} --input ... --output ...",
        f"{target} must then hold:",
        describe_layout(config, target),
        "Or run without model weights (shots, motion and technical scores only):",
        "  curate run pipelines/model-free.yaml --input ... --output ...",
    ]
    return "\n".join(lines)


def network_needed(config: Any) -> list[str]:
    """The endpoints :func:`download_models` fetches ``config``'s models from (hub, plain URLs)."""
    urls = []
    for where, _ in layout(config):
        if where.startswith("models--"):
            urls.append(hub_endpoint())
    a = getattr(config, "aesthetic", None)
    if a is not None and a.head.startswith(("http://", "https://")):
        urls.append(a.head)
    return list(dict.fromkeys(urls))


def offline_advice(pipeline: Path | str, config: Any, to: Path, why: str) -> str:
    """What `curate models download` prints without network: where to fetch, what to copy, exactly which files."""
    target = Path(to).resolve()
    return "\n".join([
        f"error: no network ({why}); `curate models download` needs it.",
        "On a machine with network run:",
        f"  curate models download {pipeline} --output {target}",
        f"then copy {target} to this machine at the same path (or copy a models dir another machine filled for "
        f"{Path(pipeline).name}). It must hold:",
        describe_layout(config, target),
        "Then run with:",
        f"  curate run {pipeline} --models-dir {target} --input ... --output ...",
    ])


def download_models(config: Any, to: Path, log: Callable[[str], None] = print) -> list[str]:
    """Fetch every model of ``config`` into ``to``; returns what was fetched (local paths or ids)."""
    if is_offline(ModelsConfig()):
        raise ModelUnavailable("(all)", "HF_HUB_OFFLINE is set; `curate models download` needs network")
    for url in network_needed(config):  # one quick connect each: no minute of HTTP retries when offline
        why = unreachable(url)
        if why:
            raise ModelUnavailable("(all)", f"{url}: {why}", no_network=True)
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
        elif name.startswith("vae "):
            got = f"{got[0]} (revision {got[1]})"
        done.append(f"{name}: {got}")
        log(f"  -> {got}")
    return done

