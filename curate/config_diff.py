"""What differs between the pipeline an OUTPUT was written with and another one, and what that allows.

An OUTPUT holds clips made under one configuration, and its manifest says
which. Settings fall in five kinds, by what a change would do to the clips:

* **split** (detector but its ``device``, clip lengths and trims, the clip purity check
  ``clips.purity``, ``analysis.width``): clip
  boundaries, hence clip ids, would change — only a new OUTPUT can hold them;
* **computed** (probe, other analysis sizes, encoding, models, captions,
  embeddings, the text section and its detector width): stored scores, bytes
  or captions would change — a new OUTPUT too;
* **thresholds** (filter, caption-check bands, dedup): decisions only —
  ``curate refilter`` applies them to the stored scores without re-analysis;
* **derived** (``latents``, ``text_embeddings``): tables computed from the committed clips, not
  the clips — ``curate latents`` adds them as a new version; a run with a
  ``latents`` section also computes its new clips' latents (never caption
  embeddings) and removes none, so it may differ (clips without latents get
  them at the next ``curate latents``, which skips clips that have them);
* **operational** (name, description, shard sizes, limits, model directory,
  resources, the review queue, the dedup engine, the text detector's frames per
  forward pass, where TransNetV2 runs): how a run works, not what it produces — free to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curate.config import ConfigError

SPLIT = ("detector", "clips", "analysis.width")
THRESHOLDS = ("filter", "caption_check", "dedup")
DERIVED = ("latents", "text_embeddings")
OPERATIONAL = ("name", "description", "output", "limits", "models", "resources", "review", "dedup.engine",
               "text.batch_frames", "detector.device")


@dataclass(frozen=True)
class Difference:
    path: str  # dotted setting name, e.g. ``filter.min_motion``
    old: Any
    new: Any
    kind: str  # split | computed | thresholds | derived | operational

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"


def _show(v: Any) -> str:
    return "(absent)" if v is _ABSENT else repr(v)


_ABSENT = object()


def _kind(path: str, old: Any, new: Any) -> str:
    def under(prefixes: tuple[str, ...]) -> bool:
        return any(path == p or path.startswith(p + ".") for p in prefixes)

    if under(OPERATIONAL):  # first: detector.device within the split settings, dedup.engine within the thresholds
        return "operational"
    if under(SPLIT):
        return "split"
    if path == "caption_check" and (old is None or new is None):
        return "computed"  # adding or removing the check changes what the run computes
    if under(THRESHOLDS):
        return "thresholds"
    if under(DERIVED):
        return "derived"
    return "computed"


def _walk(old: Any, new: Any, path: str, out: list[Difference]) -> None:
    if isinstance(old, dict) and isinstance(new, dict) and not (path.endswith(".params") or path == "resources"):
        for key in sorted(set(old) | set(new)):
            _walk(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{path}.{key}" if path else key, out)
    elif old != new:
        out.append(Difference(path, old, new, _kind(path, old, new)))


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[Difference]:
    """Every setting (as a dotted path) whose value differs between two resolved configs."""
    out: list[Difference] = []
    _walk(old, new, "", out)
    return out


def of_kind(diffs: list[Difference], *kinds: str) -> list[Difference]:
    return [d for d in diffs if d.kind in kinds]


def listed(diffs: list[Difference]) -> str:
    return "; ".join(str(d) for d in diffs)


class OutputMismatch(ConfigError):
    """A run's pipeline differs from the OUTPUT's in settings that change what it holds.

    ``refilter`` is true when only thresholds differ (``curate refilter`` applies them).
    """

    def __init__(self, message: str, refilter: bool) -> None:
        super().__init__(message)
        self.refilter = refilter


def check_run_fits(output: str, written: dict[str, Any] | None, new: dict[str, Any]) -> None:
    """Raise :class:`OutputMismatch` unless a run with config ``new`` may add to ``output``.

    ``written`` is the config of the OUTPUT's current version (``None`` for a new
    OUTPUT). Only operational settings may differ: anything else would leave the
    manifest describing a configuration that was not applied to all its clips.
    """
    if not written:
        return
    diffs = differences(written, new)
    fatal = of_kind(diffs, "split", "computed")
    if fatal:
        raise OutputMismatch(
            f"{output} was written with other settings that change the clips themselves ({listed(fatal)}); "
            f"a run cannot mix them into one OUTPUT. Write to a new OUTPUT, or run the pipeline {output} was written with.",
            refilter=False,
        )
    thresholds = of_kind(diffs, "thresholds")
    if thresholds:
        raise OutputMismatch(
            f"{output} holds clips decided with other thresholds ({listed(thresholds)}). "
            f"Apply the new thresholds to what is there with `curate refilter` (no re-analysis); "
            f"then this run adds new inputs under them.",
            refilter=True,
        )
