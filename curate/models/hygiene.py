"""Caption hygiene: clean model output and catch degenerate captions.

Captioners open with boilerplate ("The video shows ..."), stutter (repeated
n-grams) or, when a model or API is failing, return the same text for every
clip. The first two are visible in one caption; the last needs state across
clips, kept by :class:`RepeatTracker`.
"""

from __future__ import annotations

import re

from curate.records import Reason, reason

_BOILERPLATE = [
    re.compile(p, re.IGNORECASE)
    for p in (
        (
            r"^(?:in\s+)?(?:this|the)\s+(?:short\s+)?(?:video|clip|image|picture|photo|footage|scene|frame|animation)s?\s*"
            r"(?:,\s*|(?:shows|depicts|features|displays|captures|presents|showcases|is\s+showing|contains)\s+(?:that\s+)?)"
        ),
        r"^(?:here\s+is|this\s+is|there\s+is)\s+(?:a|an)\s+(?:video|clip|image|picture|photo)\s+(?:of|showing)\s+",
        r"^(?:a|an)\s+(?:video|clip|image|picture|photo)\s+(?:of|showing)\s+",
        r"^(?:caption|description)\s*:\s*",
    )
]
_WORD = re.compile(r"[\w']+")


def clean_caption(text: str | None) -> str:
    """Caption without quotes, boilerplate openings and runs of whitespace; first letter upper-case."""
    s = " ".join((text or "").split()).strip().strip("\"'“”").strip()
    changed = True
    while changed:
        changed = False
        for pat in _BOILERPLATE:
            new = pat.sub("", s, count=1)
            if new != s:
                s, changed = new.strip(), True
    return s[:1].upper() + s[1:]


def _repeated_run(words: list[str]) -> str | None:
    """An n-gram (n <= 4) repeated back to back: 4 times for single words, 3 times otherwise."""
    for n in range(1, 5):
        need = 4 if n == 1 else 3
        for i in range(len(words) - n * need + 1):
            gram = words[i : i + n]
            if all(words[i + k * n : i + (k + 1) * n] == gram for k in range(1, need)):
                return " ".join(gram)
    return None


def degenerate_reason(text: str, min_words: int = 3, max_words: int = 120) -> Reason | None:
    """Why a (cleaned) caption is unusable (a flag reason), or ``None`` when it looks sane."""
    words = _WORD.findall(text.lower())
    if not words:
        return reason("caption_empty", "caption empty")
    if len(words) < min_words:
        return reason("min_words", f"caption too short ({len(words)} words < min_words {min_words})")
    if len(words) > max_words:
        return reason("max_words", f"caption too long ({len(words)} words > max_words {max_words})")
    run = _repeated_run(words)
    if run:
        return reason("caption_repeats", f"caption repeats {run!r}")
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if len(grams) >= 12 and len(set(grams)) < 0.5 * len(grams):
        return reason("caption_repetitive", f"caption repetitive ({len(set(grams))} distinct of {len(grams)} word triples)")
    return None


def caption_key(text: str) -> str:
    """Case- and punctuation-insensitive identity of a caption."""
    return " ".join(_WORD.findall(text.lower()))


class RepeatTracker:
    """Counts, per caption, the distinct videos it was written for in this worker.

    Clips of one video may share a caption (a manifest caption is per video);
    the same text on ``max_videos`` unrelated videos is what a failing captioner
    produces. Limitations: the count is per worker process (each Ray actor sees
    only its share of the videos), and the first ``max_videos - 1`` videos with
    such a caption are not flagged retroactively.
    """

    def __init__(self, max_videos: int = 5) -> None:
        self.max_videos = max_videos
        self._videos: dict[str, set[str]] = {}

    def add(self, text: str, video_id: str) -> Reason | None:
        """Record ``text`` for ``video_id``; a reason when it has now been seen on too many videos."""
        key = caption_key(text)
        if not key:
            return None
        seen = self._videos.setdefault(key, set())
        if len(seen) < self.max_videos:  # enough to decide; bounded memory per caption
            seen.add(video_id)
        if len(seen) >= self.max_videos:
            return reason("max_same_caption_videos", f"caption repeated on {len(seen)}+ videos (max_same_caption_videos {self.max_videos})")
        return None
