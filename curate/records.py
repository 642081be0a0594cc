"""The record that flows between stages: one dict per source video.

Keeping a video's clips nested in its record means a video's clips and its
ledger row reach the writer together, which is what makes a commit atomic
per video (see ``curate/output/store.py``).

Video record keys (set by the stage named):
    uri, video_id, size_bytes, input_meta, caption, caption_source   discover
    status (PENDING | DONE | REJECTED | FAILED), reason_key, reason    any stage
        (``reason_key`` is what the funnel counts, e.g. ``min_duration_s``
        or ``analyse: VideoOpenFailure``; ``reason`` the sentence for people)
    probe: dict                                                        probe
        container, codec, pix_fmt, width, height, rotation, sar,
        fps, duration_s (header), has_audio, bit_depth
    decoded: dict (what decoding actually yielded)                     analyse
        num_frames, duration_s, fps, irregular (None, or why frame
        times are not each frame's own pts: the encode stage then cuts
        clips by decode index instead of seeking; not stored)
    boundaries: [[start, end), ...] shot boundaries (cuts: start==end)  analyse
    shots: [{start_frame, end_frame}], transitions: [{start_frame,       analyse
        end_frame, kind (cut | gradual | flash_suppressed), score}]
        the shot list stored in videos.parquet (detector and purity check)
    shots_too_short: int, decode_warning: str | None                    analyse
    clips: list[clip dict]                                             analyse
    timings: dict[stage name, seconds]                                 every stage
    _latent_sets: {bucket: set record} (what the manifest records of    latents
        the latents the video's clips got; ``curate.latents.set_record``)

Clip dict keys are the columns of ``schemas/clip`` (see that file for units),
plus ``reject_reasons`` (analyse: ``contains_transition``; filter, caption check, dedup) and ``flag_reasons``
(caption stages; a flagged clip goes to ``review/``), each a list of
:func:`reason` dicts ``{"key", "detail"}``, and transient keys starting with
``_`` that are never written, e.g. ``_frames``: list of HxWx3 uint8 RGB frames
sampled in the decode pass at ``analysis.sample_width`` for scorers and CLIP
(dropped by the filter, after the last stage that reads them),
``_frame_embeddings`` (CLIP, one row per sampled frame), and with a
``latents:`` section ``_latent_pixels`` (encode: bucket key -> the loader's
uint8 ``(T, 3, H, W)`` pixels of an accepted clip, dropped by the latents
stage) and ``_latents`` (latents: bucket key -> ``(latent, logvar)`` bytes,
which :mod:`curate.output.rows` turns into ``latents`` rows).

Clip pieces. A stage may stream a long video's clips out ahead of its record,
so a long source's clips never sit in one object. A *piece* is ``{"video_id",
"uri", PIECE: True, "clips": [...]}`` plus the video-level keys its rows fall
back to. Two kinds:

* an *analysis piece* (the analysis stage sends one once the clips it has
  finished hold ``piece_mb`` of sampled frames) carries ``OPEN``, ``PARTS``
  (0), ``probe`` and its own ``decoded`` (``fps`` and ``irregular`` as known
  when it left): every stage up to encode works on it as on a video, and the
  encode stage closes it (drops ``OPEN``, sets ``PARTS`` to the byte pieces it
  split off it). A stage that fails on it fails it (``status``), and so the video.
* a *byte piece* (the encode stage sends one once the clips it has encoded
  hold ``piece_mb`` of MP4) is stored: later stages pass it through, except
  the latents stage, which gives its clips ``_latents`` and the piece its
  ``_latent_sets``.

The video's own record follows its pieces with the clips not streamed and
``STREAMED`` saying what to wait for (``{"analysed": analysis pieces,
"pieces": byte pieces of its own clips}``). Writers store a piece's rows at
once, under staged names, and commit them with the video's ledger row (which
then counts their clips and adds their timings), or drop them all when the
video or one of its pieces failed (see ``curate/output/pieces.py``).
"""

from __future__ import annotations

import hashlib
from typing import Any

Record = dict[str, Any]

PENDING, DONE, REJECTED, FAILED = "pending", "done", "rejected", "failed"

Reason = dict[str, str]  # {"key": what is counted, "detail": what a person reads}


def reason(key: str, detail: str | None = None) -> Reason:
    """A reason to drop or flag a clip: ``key`` is counted (``min_motion``), ``detail`` is read.

    The key is a stable name (a threshold, a check) that the funnel, inspect,
    the report and refilter group by; the detail is never parsed back.
    """
    return {"key": key, "detail": detail if detail is not None else key}


def reason_keys(reasons: list[Reason] | None) -> list[str]:
    """The keys of ``reasons`` (``None`` or empty gives ``[]``)."""
    return [r["key"] for r in reasons or []]


def clip_id(video_id: str, split_key: str, start_frame: int, end_frame: int) -> str:
    """Deterministic clip id: same source, split settings and span give the same id."""
    h = hashlib.sha256(f"{video_id}|{split_key}|{start_frame}|{end_frame}".encode()).hexdigest()
    return h[:24]


PIECE = "_piece"  # marks a record holding some of a video's clips, sent ahead of the video's record
OPEN = "_open"  # on an analysis piece until the encode stage: stages work on it as on a video
PARTS = "_parts"  # on an analysis piece: byte pieces the encode stage split off it (its presence marks one)
STREAMED = "_streamed"  # on the video's record: {"analysed", "pieces"} counts of what was sent ahead of it


def is_piece(record: Record) -> bool:
    """True for a clip piece (see the module docstring)."""
    return bool(record.get(PIECE))


def is_open(record: Record) -> bool:
    """True for an analysis piece no encode stage has closed yet: stages work on it like a video."""
    return bool(record.get(OPEN))


def passes(record: Record) -> bool:
    """True for a piece that stages pass through untouched (a closed one)."""
    return is_piece(record) and not is_open(record)


def piece(video: Record, clips: list[Record]) -> Record:
    """A byte piece of ``video`` holding ``clips`` (the video-level keys a clip row falls back to, and no more)."""
    keep = ("video_id", "uri", "caption", "caption_source", "input_meta")
    return {**{k: video.get(k) for k in keep}, PIECE: True, "clips": clips}


def analysis_piece(video: Record, clips: list[Record], decoded: dict[str, Any]) -> Record:
    """An open piece of ``video``: ``clips`` with what later stages read of a video (``probe``, ``decoded`` so far)."""
    return {**piece(video, clips), "probe": video.get("probe"), "decoded": decoded, OPEN: True, PARTS: 0, "timings": {}}


def public(d: Record) -> Record:
    """``d`` without transient (``_``-prefixed) keys."""
    return {k: v for k, v in d.items() if not k.startswith("_")}
