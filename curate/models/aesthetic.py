"""LAION aesthetic heads on CLIP image embeddings, run as plain NumPy matmuls.

Two published layouts: the linear heads (``Linear(512|768, 1)``, keys
``weight``/``bias``) and the improved predictor (``layers.0`` ... ``layers.7``:
Linear 768->1024->128->64->16->1 with dropouts between and no activations).
Both are affine chains at inference (dropout is the identity), so the layout
is read from the state-dict keys and no torch module is needed to score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.models.hub import ModelUnavailable, cache_dir, is_offline, url_file
from curate.models.settings import DEFAULT_MODELS, AestheticConfig, ModelsConfig

_LAYER = re.compile(r"^layers\.(\d+)\.(weight|bias)$")
_PREFIXES = ("module.", "model.", "mlp.")


@dataclass(frozen=True)
class AestheticHead:
    """The head's affine layers in order; ``layout`` is ``linear`` or ``mlp``."""

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    layout: str
    source: str

    @property
    def input_dim(self) -> int:
        return int(self.layers[0][0].shape[1])

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """(N,) scores of (N, D) L2-normalised CLIP image embeddings."""
        x = np.asarray(embeddings, np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"aesthetic head {self.source} takes (N, {self.input_dim}) embeddings, got {x.shape}")
        for w, b in self.layers:
            x = x @ w.T + b
        return x[:, 0]


def _strip(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for p in _PREFIXES:
        if state and all(k.startswith(p) for k in state):
            return {k[len(p):]: v for k, v in state.items()}
    return state


def head_from_state_dict(state: dict[str, np.ndarray], source: str = "state dict") -> AestheticHead:
    """Detect the layout from the keys and check the layer shapes chain up to one output."""
    state = _strip({k: np.asarray(v, np.float32) for k, v in state.items()})
    if set(state) == {"weight", "bias"}:
        layers, layout = [(state["weight"], state["bias"])], "linear"
    else:
        found: dict[int, dict[str, np.ndarray]] = {}
        for k, v in state.items():
            m = _LAYER.match(k)
            if not m:
                raise ValueError(f"aesthetic head {source}: unexpected key {k!r}; expected weight/bias or layers.N.weight/bias")
            found.setdefault(int(m.group(1)), {})[m.group(2)] = v
        if not found or any(set(p) != {"weight", "bias"} for p in found.values()):
            raise ValueError(f"aesthetic head {source}: every layers.N needs weight and bias")
        layers, layout = [(found[i]["weight"], found[i]["bias"]) for i in sorted(found)], "mlp"
    for i, (w, b) in enumerate(layers):
        if w.ndim != 2 or b.shape != (w.shape[0],) or (i and w.shape[1] != layers[i - 1][0].shape[0]):
            raise ValueError(f"aesthetic head {source}: layer {i} shapes {w.shape}/{b.shape} do not chain")
    if layers[-1][0].shape[0] != 1:
        raise ValueError(f"aesthetic head {source}: last layer has {layers[-1][0].shape[0]} outputs, expected 1")
    return AestheticHead(tuple(layers), layout, source)


def _read(path: str) -> dict[str, np.ndarray]:
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return load_file(path)
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    return {k: v.float().numpy() for k, v in state.items() if hasattr(v, "numpy")}


def resolve_head(cfg: AestheticConfig, models: ModelsConfig, download: bool) -> str | None:
    """Local path of the head (fetching an URL when ``download``); raises :class:`ModelUnavailable`."""
    if cfg.head.startswith(("http://", "https://")):
        return url_file(cfg.head, label=f"aesthetic head {cfg.head}", cache=cache_dir(None, models),
                        offline=is_offline(models), download=download, subdir="aesthetic")
    if not Path(cfg.head).is_file():
        raise ModelUnavailable(f"aesthetic head {cfg.head}", f"file {cfg.head} not found")
    return cfg.head


def load_head(cfg: AestheticConfig | str, models: ModelsConfig = DEFAULT_MODELS) -> AestheticHead:
    """Load a LAION head from a path or an :class:`AestheticConfig`."""
    cfg = AestheticConfig(head=cfg) if isinstance(cfg, str) else cfg
    path = resolve_head(cfg, models, download=True)
    return head_from_state_dict(_read(path), source=cfg.head)


def aggregate(scores: np.ndarray, how: str) -> float:
    """One clip score from its per-frame scores (``mean`` or ``min``)."""
    return float(np.min(scores) if how == "min" else np.mean(scores))
