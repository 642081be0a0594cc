"""Find model files in a cache, probe for them, or fetch them: one policy for all models.

Every loader resolves its files here first, so "cached", "offline" and "not
reachable" mean the same for CLIP, aesthetic heads and captioners, and the
driver can check a whole pipeline without loading a single weight.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from curate.models.settings import ModelsConfig

_TRUE = {"1", "true", "yes", "on"}


class ModelUnavailable(RuntimeError):
    """Weights that cannot be had; the message names the model and how to provide it.

    ``detail`` says why (not cached, offline, no network); ``no_network`` is
    true when the source could not be reached at all.
    """

    def __init__(self, model: str, detail: str, no_network: bool = False) -> None:
        self.model, self.detail, self.no_network = model, detail, no_network
        super().__init__(
            f"model {model!r} is not available: {detail}.\n"
            "To provide it: on a connected machine run `curate models download PIPELINE.yaml --output DIR`, "
            "copy DIR to this machine, then set `models.dir: DIR` in the pipeline or pass `--models-dir DIR` "
            "(or point the model at a local checkpoint path)."
        )


NETWORK_TIMEOUT_S = 1.5
_UNREACHABLE: dict[tuple[str, int], tuple[float, str]] = {}  # (host, port) -> (when, why): answers for a minute


def hub_endpoint() -> str:
    """The Hugging Face endpoint downloads go to (``HF_ENDPOINT``, else the library's default)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def unreachable(url: str, timeout_s: float = NETWORK_TIMEOUT_S) -> str | None:
    """Why ``url``'s host (or the proxy configured for it) cannot be reached; ``None`` if a TCP connect works.

    One connect of at most ``timeout_s``, so "no network" is known in a second or
    two instead of after the HTTP clients' retries (a minute with huggingface_hub).
    A failed answer is remembered for a minute, so checking many files costs one wait.
    """
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    known = _UNREACHABLE.get((host, port))
    if known and time.monotonic() - known[0] < 60:
        return known[1]
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return None
    except OSError as e:
        why = f"cannot connect to {host}:{port}: {'timed out' if isinstance(e, socket.timeout) else e.strerror or e}"
        _UNREACHABLE[(host, port)] = (time.monotonic(), why)
        return why


def is_offline(models: ModelsConfig) -> bool:
    """Offline when the pipeline says so or ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` is set."""
    env = (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").lower()
    return models.offline or env in _TRUE


def cache_dir(own: Path | None, models: ModelsConfig) -> str | None:
    """The pipeline's models dir (``--models-dir`` overrides per-model settings), else the model's own, else the library default."""
    d = models.dir or own
    return str(d) if d else None


def hub_file(
    repo: str, filenames: Sequence[str], *, label: str, cache: str | None, offline: bool, download: bool,
    revision: str | None = None,
) -> str | None:
    """Local path of the first of ``filenames`` in hub ``repo``.

    Cached files are returned without network. Otherwise: offline raises; with
    ``download`` the first file that exists is fetched; without it the hub is only
    asked whether one exists and ``None`` is returned (so checks stay cheap).
    """
    from huggingface_hub import file_exists, hf_hub_download, try_to_load_from_cache

    for name in filenames:
        hit = try_to_load_from_cache(repo, name, cache_dir=cache, revision=revision)
        if isinstance(hit, str):
            return hit
    where = cache or "the default Hugging Face cache"
    if offline:
        raise ModelUnavailable(label, f"hf-hub:{repo} ({' or '.join(filenames)}) is not in {where} and offline mode is on")
    why = unreachable(hub_endpoint())
    if why:
        raise ModelUnavailable(label, f"hf-hub:{repo} ({' or '.join(filenames)}) is not in {where} and there is no network ({why})",
                               no_network=True)
    errors = []
    for name in filenames:
        try:
            if download:
                return hf_hub_download(repo, name, cache_dir=cache, revision=revision)
            if file_exists(repo, name, revision=revision):
                return None
            errors.append(f"{name}: not in the repo")
        except Exception as e:  # noqa: BLE001 - network/auth errors all mean "cannot be had"
            errors.append(f"{name}: {type(e).__name__}: {e}")
    raise ModelUnavailable(label, f"hf-hub:{repo} is not in {where} and cannot be fetched ({'; '.join(errors)})")


def url_file(url: str, *, label: str, cache: str | None, offline: bool, download: bool, subdir: str) -> str | None:
    """Like :func:`hub_file` for a plain URL, cached as ``CACHE/subdir/<basename>``."""
    base = Path(cache) if cache else Path.home() / ".cache" / "curate"
    target = base / subdir / os.path.basename(url.split("?")[0])
    if target.is_file():
        return str(target)
    if offline:
        raise ModelUnavailable(label, f"{url} is not in {target.parent} and offline mode is on")
    why = unreachable(url)
    if why:
        raise ModelUnavailable(label, f"not in {target.parent} and there is no network ({why})", no_network=True)
    tmp = None
    try:
        if not download:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15).close()
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=60) as src, tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
            shutil.copyfileobj(src, tmp)
        os.replace(tmp.name, target)  # complete files only: a cut download is never mistaken for weights
        return str(target)
    except OSError as e:
        if tmp is not None:
            Path(tmp.name).unlink(missing_ok=True)
        raise ModelUnavailable(label, f"{url} is not in {target.parent} and cannot be fetched ({e})") from e


def snapshot_revision(path: str) -> str | None:
    """The hub commit a cached file belongs to (``.../snapshots/<commit>/...``), if any."""
    parts = Path(path).parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None


def is_local(model: str) -> bool:
    """Whether ``model`` names a directory (existing, or written as a path) rather than a hub id."""
    return Path(model).expanduser().exists() or model.startswith((".", "/", "~"))


class Pretrained(Protocol):
    """The settings a ``from_pretrained`` model has (``VaeConfig``, ``TextEncoderConfig``)."""

    model: str
    subfolder: str | None
    revision: str | None
    cache_dir: Path | None
    random_init: bool


def pretrained_kwargs(cfg: Pretrained, models: ModelsConfig, subfolder: str | None) -> dict[str, Any]:
    """Keyword arguments for ``from_pretrained``/``load_config`` of ``cfg``'s weights, as :func:`resolve_pretrained` checked them.

    A hub id loads from the cache only (``local_files_only``): the weights check already ran, and a run never downloads.
    """
    kw: dict[str, Any] = {"subfolder": subfolder} if subfolder else {}
    if not is_local(cfg.model):
        kw.update(cache_dir=cache_dir(cfg.cache_dir, models), revision=cfg.revision, local_files_only=True)
    return kw


def resolve_pretrained(cfg: Pretrained, label: str, weights: Sequence[str], models: ModelsConfig, download: bool = False,
                       also: Sequence[tuple[str | None, str]] = ()) -> tuple[str, str | None]:
    """``(what from_pretrained loads, weights revision)`` of a diffusers/transformers model; raises :class:`ModelUnavailable`.

    A local directory needs ``config.json`` and one of ``weights`` (only the config with
    ``random_init``); its revision is the weights' content hash. A hub model is looked up
    in the cache (``models.dir``), else fetched with ``download``; its revision is the
    cached snapshot's commit. ``also`` lists further ``(subfolder, file)`` the model needs
    whatever its weights (a tokenizer's files).
    """
    if is_local(cfg.model):
        root = Path(cfg.model).expanduser()
        d = root / (cfg.subfolder or "")
        if not (d / "config.json").is_file():
            raise ModelUnavailable(label, f"{d}/config.json not found (save it with save_pretrained)")
        for sub, name in also:
            if not (root / (sub or "") / name).is_file():
                raise ModelUnavailable(label, f"{root / (sub or '') / name} not found (save it with save_pretrained)")
        if cfg.random_init:
            return str(root), None
        found = [d / w for w in weights if (d / w).is_file()]
        if not found:
            raise ModelUnavailable(label, f"no weights ({' or '.join(weights)}) in {d}")
        return str(root), "sha256:" + _digest(found[0])
    sub = f"{cfg.subfolder}/" if cfg.subfolder else ""
    hub = dict(label=label, cache=cache_dir(cfg.cache_dir, models), offline=is_offline(models), download=download,
               revision=cfg.revision)
    conf = hub_file(cfg.model, [f"{sub}config.json"], **hub)  # type: ignore[arg-type]
    for extra_sub, name in also:
        hub_file(cfg.model, [f"{extra_sub}/{name}" if extra_sub else name], **hub)  # type: ignore[arg-type]
    if cfg.random_init:
        return cfg.model, snapshot_revision(conf) if conf else cfg.revision
    found_weights = hub_file(cfg.model, [sub + w for w in weights], **hub)  # type: ignore[arg-type]
    return cfg.model, snapshot_revision(found_weights) if found_weights else cfg.revision


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]
