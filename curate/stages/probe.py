"""The probe stage: does a source qualify at all, judging only what headers can be trusted for.

Trusted: that it opens, has a video stream, that a frame decodes, and the
frame's size. Not trusted: durations and frame counts, which decoding
establishes (the analysis stage rejects "too short" on decoded frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

from curate.config import ProbeConfig
from curate.decisions import source_rejection
from curate.media.identity import uri_id, video_identity
from curate.media.probe import ProbeError, probe
from curate.records import FAILED, Record
from curate.stage import VideoStage, fail, reject


@dataclass
class ProbeStage(VideoStage):
    """Writes ``video["probe"]``; rejects sources without video or too small (size of the decoded first frame).

    Unreadable sources (empty, garbage, truncated before the first frame,
    unknown codec) are ``failed``. Duration is left to the analysis stage,
    which rejects on the duration it decoded.
    """

    name: ClassVar[str] = "probe"
    reads: ClassVar[tuple[str, ...]] = ("uri",)
    writes: ClassVar[tuple[str, ...]] = ("video_id", "size_bytes", "probe")
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    cpus: float = 0.25

    @classmethod
    def from_config(cls, config: Any) -> "ProbeStage":
        return cls(probe=config.probe, timeout_s=config.limits.video_timeout_s)

    def process_iter(self, batch: list[Record]) -> Iterator[Record]:
        """Each video's identity first (:mod:`curate.media.identity`: a hash of 2 MiB, on the worker rather than
        the driver), outside the guard, so a video whose probe times out still has its id."""
        yield from super().process_iter([identify(v) for v in batch])

    def process_video(self, video: Record) -> Record:
        try:
            info = probe(video["uri"])
        except ProbeError as e:
            return fail(video, f"probe: {e.key}", f"probe: {e}")
        out = dict(video, probe=info)
        why = source_rejection(info, self.probe)
        if why is not None:
            return reject(out, why)
        # No duration check here: the header's duration is the only evidence at this point, and headers
        # lie (an MP4/MKV may claim 0.3 s and decode 5 s). The analysis stage rejects on the decoded span,
        # which for a source that really is short costs the decode of a few frames.
        return out


def identify(video: Record) -> Record:
    """``video`` with its ``video_id`` (and size as hashed); one that cannot be read is ``failed`` with a URI id."""
    if video.get("video_id"):
        return video
    out = dict(video)
    try:
        out["video_id"], out["size_bytes"] = video_identity(video["uri"])
    except (OSError, ValueError) as e:
        out.update(video_id=uri_id(video["uri"]), size_bytes=None, status=FAILED,
                   reason_key="discover: cannot read input", reason=f"discover: cannot read input: {e}")
    return out
