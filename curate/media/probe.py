"""Read what a source's headers claim, and check that its video actually decodes.

Headers can lie (AVI frame counts, missing WebM durations), so the probe only
states what it read; the analysis stage records what decoding yielded. One
frame is decoded because rotation lives in the frame's display-matrix side
data and because "opens" is not "decodes" (unknown codecs, truncated files).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av

from curate.media.decode import frame_rotation, open_input, stream_fps

_FIRST_FRAME_PACKETS = 500  # packets to read before concluding nothing decodes


class ProbeError(Exception):
    """The source cannot be read; ``key`` names the kind (``unreadable``), the message is the detail."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _seconds(value: int | None, tb: Fraction | None) -> float | None:
    return float(value * tb) if value and tb else None


def _first_frame(container, stream) -> av.VideoFrame | None:
    for n, packet in enumerate(container.demux(stream)):
        try:
            frames = stream.decode(packet)
        except av.error.InvalidDataError:
            frames = []
        if frames:
            return frames[0]
        if n >= _FIRST_FRAME_PACKETS:
            break
    return None


def probe(uri: str) -> dict[str, Any]:
    """Header facts about ``uri`` plus the first frame's rotation and pixel format.

    Returns a dict with ``has_video`` False (and ``has_audio``, ``container``)
    when there is no video stream; otherwise also ``codec``, ``pix_fmt``,
    ``bit_depth``, coded ``width``/``height``, ``rotation`` (0/90/180/270,
    counter-clockwise), ``sar`` (float), header ``fps``, ``duration_s`` and
    ``num_frames`` (None when the header does not say).

    Raises:
        ProbeError: unreadable container, unsupported codec, nothing decodes.
    """
    try:
        with open_input(uri) as (container, stream):
            info: dict[str, Any] = {
                "container": container.format.name,
                "has_video": stream is not None,
                "has_audio": bool(container.streams.audio),
            }
            if stream is None:
                return info
            cc = stream.codec_context
            if cc is None:
                raise ProbeError("unsupported codec", f"unsupported codec: no decoder for video stream #{stream.index}")
            first = _first_frame(container, stream)
            if first is None:
                raise ProbeError("no decodable video frame", f"no decodable video frame ({cc.name})")
            pix_fmt = first.format.name
            sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio
            duration = _seconds(stream.duration, stream.time_base)
            if duration is None and container.duration:
                duration = container.duration / av.time_base
            info.update(
                codec=cc.name,
                pix_fmt=pix_fmt,
                bit_depth=max((c.bits for c in first.format.components), default=8),
                width=first.width,
                height=first.height,
                rotation=frame_rotation(first),
                sar=float(sar) if sar else 1.0,
                fps=stream_fps(stream) or None,
                duration_s=duration,
                num_frames=stream.frames or None,
            )
            return info
    except ProbeError:
        raise
    except av.error.DecoderNotFoundError as e:
        raise ProbeError("unsupported codec", f"unsupported codec: {e}") from e
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise ProbeError("unreadable", f"unreadable: {type(e).__name__}: {e}") from e
