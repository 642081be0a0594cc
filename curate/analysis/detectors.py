"""The configured shot detector, by name: one factory over PySceneDetect, TransNetV2 and the combined detector.

Apart from :mod:`curate.analysis.shots` (the detector interface and the
PySceneDetect adapters) so that detectors built on that interface
(:mod:`curate.analysis.combined`) can be chosen here without an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from curate.analysis.shots import ADAPTIVE_DEFAULTS, CombinedDetector, GradualDetector, SceneDetectAdapter, ShotDetector, TinyGray

if TYPE_CHECKING:
    from curate.analysis.borders import PurityWithoutBars


def check_detector_params(kind: str, params: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the parameter unless ``params`` fit ``kind``'s constructor.

    Names are bound to the constructor's signature and values checked against
    its type annotations (PySceneDetect does not check them itself, so
    ``threshold: banana`` would fail only inside the first video); the
    PySceneDetect detectors are then built once. TransNetV2 is not built here:
    that loads its weights.
    """
    import inspect
    import sys

    from pydantic import TypeAdapter, ValidationError

    if "device" in params:
        raise ValueError("detector.params.device: set detector.device instead (it does not change clip ids)")
    cls = _detector_class(kind)
    signature = inspect.signature(cls)
    try:
        signature.bind(**params)
    except TypeError as e:
        raise ValueError(f"detector.params for {kind!r}: {e}") from None
    namespace = vars(sys.modules[cls.__module__])
    for name, value in params.items():
        annotation = signature.parameters[name].annotation
        try:
            adapter = TypeAdapter(eval(annotation, namespace) if isinstance(annotation, str) else annotation)  # noqa: S307 - the library's own annotation
        except Exception:  # noqa: BLE001 - an annotation pydantic cannot check: the constructor decides
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as e:
            raise ValueError(f"detector.params.{name} for {kind!r}: {e.errors()[0]['msg']} (got {value!r})") from None
        except Exception:  # noqa: BLE001 - annotation with unresolved references: the constructor decides
            continue
    if kind not in ("transnetv2", "combined"):
        from curate.media.decode import FALLBACK_FPS

        build_detector(kind, params, fades=False, fps=FALLBACK_FPS)


def _detector_class(kind: str) -> type:
    if kind == "transnetv2":
        from curate.analysis.transnet import TransNetDetector

        return TransNetDetector
    if kind == "combined":
        from curate.analysis.combined import CombinedShotDetector

        return CombinedShotDetector
    from scenedetect.detectors import AdaptiveDetector, ContentDetector, ThresholdDetector

    classes = {"adaptive": AdaptiveDetector, "content": ContentDetector, "threshold": ThresholdDetector}
    if kind not in classes:
        raise ValueError(f"unknown detector kind {kind!r}; use adaptive, content, threshold or transnetv2")
    return classes[kind]


def build_purity(config: Any, fps: float) -> PurityWithoutBars:
    """The clip purity check of ``clips.purity`` (a ``PurityConfig``, not imported: curate.config imports this
    module) for a video at ``fps``: at the steady analysed rate (:mod:`curate.analysis.steady_rate`) and without
    black bars (:mod:`curate.analysis.borders`), as the combined detector sees the video."""
    from curate.analysis.borders import PurityWithoutBars
    from curate.analysis.purity import PurityCheck
    from curate.analysis.steady_rate import purity_at_steady_rate, step_for

    return PurityWithoutBars(purity_at_steady_rate(PurityCheck(config.ratio, config.min_change, config.max_frames), fps), step_for(fps))


def build_detector(kind: str, params: dict[str, Any], fades: bool, fps: float, device: str = "cpu") -> ShotDetector:
    """The configured detector (``DetectorConfig``), plus :class:`GradualDetector` when ``fades``.

    ``params`` go to the detector's constructor unchanged; for ``adaptive``
    they override :data:`ADAPTIVE_DEFAULTS`. ``device`` is where TransNetV2
    runs (``transnetv2``, ``combined``).
    """
    from scenedetect.detectors import AdaptiveDetector, ContentDetector, ThresholdDetector

    tiny = TinyGray()  # one small grey frame per frame, for every detector of this set
    try:
        if kind == "adaptive":
            primary: ShotDetector = SceneDetectAdapter(AdaptiveDetector(**{**ADAPTIVE_DEFAULTS, **params}), fps, tiny=tiny)
        elif kind == "content":
            primary = SceneDetectAdapter(ContentDetector(**params), fps, tiny=tiny)
        elif kind == "threshold":
            primary = SceneDetectAdapter(ThresholdDetector(**params), fps, tiny=tiny)
        elif kind == "transnetv2":
            from curate.analysis.transnet import TransNetDetector

            primary = TransNetDetector(**params, device=device)
        elif kind == "combined":  # has its own gradual detector: ``fades`` switches it
            from curate.analysis.borders import WithoutBars
            from curate.analysis.combined import CombinedShotDetector
            from curate.analysis.steady_rate import at_steady_rate, step_for

            # it counts in frames, set at 25 fps: a faster video is analysed on every k-th frame; black bars are cut off
            return WithoutBars(at_steady_rate(CombinedShotDetector(**{"gradual": fades, **params}, device=device), fps), step_for(fps))
        else:
            raise ValueError(f"unknown detector kind {kind!r}; use adaptive, content, threshold or transnetv2")
    except (TypeError, ValueError) as e:  # an unknown or mistyped constructor argument
        raise ValueError(f"detector.params for {kind!r}: {e}") from None
    return CombinedDetector([primary, GradualDetector(tiny=tiny)]) if fades else primary
