"""Captions carried with the input: manifest text, and sidecar files next to the video.

``NAME.json`` holds ``{"caption": "..."}`` for the whole video, or timed
segments (``{"segments": [{"start": s, "end": s, "text": "..."}]}`` or a bare
list of them); ``NAME.srt`` / ``NAME.vtt`` are subtitles. Timed text is
restricted to the clip's ``[start_s, end_s)`` span. ``NAME.txt`` is read by
discover into the video record already.
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from typing import Any

import fsspec

from curate.records import Record

log = logging.getLogger(__name__)

Cue = tuple[float, float, str]
Sidecar = str | list[Cue]

_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})(?:[.,](\d{1,3}))?")
_TAG = re.compile(r"<[^>]+>|\{\\[^}]*\}")
SIDECAR_EXTENSIONS = (".json", ".srt", ".vtt")


def _seconds(ts: str) -> float:
    m = _TIME.fullmatch(ts.strip())
    if not m:
        raise ValueError(f"bad subtitle timestamp {ts!r}")
    h, mi, s, frac = m.groups()
    return int(h or 0) * 3600 + int(mi) * 60 + int(s) + (int(frac.ljust(3, "0")) / 1000 if frac else 0.0)


def parse_subtitles(text: str) -> list[Cue]:
    """Cues of an SRT or WebVTT file (headers, notes and styling tags dropped)."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [ln for ln in block.strip().split("\n") if ln.strip()]
        timing = next((i for i, ln in enumerate(lines) if "-->" in ln), None)
        if timing is None:
            continue
        start, _, rest = lines[timing].partition("-->")
        body = " ".join(_TAG.sub("", ln).strip() for ln in lines[timing + 1 :])
        if body.strip():
            cues.append((_seconds(start), _seconds(rest.split()[0]), " ".join(body.split())))
    return cues


def parse_json_sidecar(data: Any) -> Sidecar:
    """A whole-video caption (str) or timed segments from a ``.json`` sidecar."""
    if isinstance(data, dict) and isinstance(data.get("caption"), str):
        return data["caption"]
    segments = data.get("segments") if isinstance(data, dict) else data
    if not isinstance(segments, list):
        raise ValueError("json sidecar: expected {'caption': str}, {'segments': [...]} or a list of segments")
    return [(float(s["start"]), float(s["end"]), str(s.get("text", s.get("caption", "")))) for s in segments]


def span_text(cues: list[Cue], start_s: float, end_s: float) -> str | None:
    """Text of the cues overlapping ``[start_s, end_s)``, consecutive repeats merged."""
    parts: list[str] = []
    for a, b, text in sorted(cues):
        if a < end_s and b > start_s and text and (not parts or parts[-1] != text):
            parts.append(text)
    return " ".join(parts) or None


class SidecarReader:
    """Reads each video's timed sidecar once; clips of the same video reuse it."""

    def __init__(self, keep: int = 64) -> None:
        self._cache: OrderedDict[str, Sidecar | None] = OrderedDict()
        self._keep = keep

    def get(self, uri: str) -> Sidecar | None:
        if uri not in self._cache:
            self._cache[uri] = self._read(uri)
            if len(self._cache) > self._keep:
                self._cache.popitem(last=False)
        return self._cache[uri]

    @staticmethod
    def _read(uri: str) -> Sidecar | None:
        """The first sidecar found; an unreadable or malformed one is logged and skipped, like a missing one."""
        fs, path = fsspec.core.url_to_fs(uri)
        stem = path.rsplit(".", 1)[0]
        for ext in SIDECAR_EXTENSIONS:
            try:
                if not fs.isfile(stem + ext):
                    continue
                with fs.open(stem + ext, "r", encoding="utf-8-sig") as f:
                    text = f.read()
                return parse_json_sidecar(json.loads(text)) if ext == ".json" else parse_subtitles(text)
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("ignoring caption sidecar %s%s: %s: %s", stem, ext, type(e).__name__, e)
        return None


def source_caption(video: Record, clip: Record, reader: SidecarReader) -> tuple[str, str] | None:
    """``(caption, caption_source)`` carried with the input, most specific first.

    Order: the clip's own caption, the manifest's, a timed sidecar (``.json``
    segments or subtitles) for the clip's span, then a whole-video sidecar. A
    clip caption that is only the video's copied down (analyse does that) counts
    as the video's.
    """
    if clip.get("caption") and clip["caption"] != video.get("caption"):
        return clip["caption"], clip.get("caption_source") or "manifest"
    if video.get("caption") and video.get("caption_source") == "manifest":
        return video["caption"], "manifest"
    side = reader.get(video["uri"]) if video.get("uri") else None
    if isinstance(side, list):
        text = span_text(side, float(clip["start_s"]), float(clip["end_s"]))
        if text:
            return text, "subtitles"
    elif side:
        return side, "sidecar"
    if video.get("caption"):
        return video["caption"], video.get("caption_source") or "sidecar"
    return None
