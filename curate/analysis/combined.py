"""One shot detector from several cues, inside the single decode pass (issue 8).

``detector.kind: combined``. Each frame is reduced once to a 48x27 RGB image
(TransNetV2's input size). Three kinds of evidence propose boundaries:

* **change runs** (the adaptive content score, generalised): ``d[i]``, the
  mean absolute RGB difference between frame ``i-1`` and ``i``, is
  *elevated* when it exceeds ``ratio`` times the median change of the 50
  frames around it (repeated frames left out, so 10 fps material shown at
  25 fps is judged on its real changes; at least its own shot's median where
  a sudden cut lies among them) and at least ``min_change`` levels;
  so is the most changed row or column (a wipe's or slide's edge changes one
  line completely while the frame mean moves little). Consecutive elevated
  frames (gaps of up to ``GAP`` frames) form a run: one frame carrying most
  of the run's change is a hard cut (a jump cut on a locked-off camera is a
  small change but a large one *relative* to the people walking); a change
  spread over the run is a gradual transition (wipes and slides, which
  neither TransNetV2 nor the linear-mix test sees, and short dissolves), and
  a frame of such a run changing ``STANDS_OUT`` times more than every frame
  within 2 of it is proposed as a cut as well (a cut into fast motion such as fire). Two
  more kinds of run: a one-frame change below ``min_change`` that is
  ``SUDDEN`` times every change around it (``QUIET``: a jump cut on a quiet
  locked-off camera), and a run that stands out only against the calmer
  side's level (``CALM``: a transition into or out of fast motion, which fills
  the other side; a side that holds a still picture, ``STILL_RUN`` exact
  repeats in a row, is judged with its repeats, so its level is next to nothing);
* **TransNetV2** per-frame probabilities, folded into regions as
  :class:`~curate.analysis.transnet.TransNetDetector` does; a region needs a
  single-frame probability above ``threshold``;
* **cadence**: where a low-rate source (a 10 fps camera, film, held animation
  frames) stops or starts repeating frames, the stretch of frames that repeat
  nothing, at most ``CADENCE_SPAN`` long: a transition is rendered at the
  container's rate, so a wipe out of fire, which changes each frame less than
  the fire does, still breaks its cadence;
* **the gradual detector** (:class:`~curate.analysis.shots.GradualDetector`:
  dissolves by the linear-mix test, fades through black) and **flat runs**:
  frames of nearly one colour (std below ``flat_std``, e.g. the white middle
  of a fade through white), joined with the ramps towards them.

Every proposal then has to pass the "same content" checks of
:func:`curate.analysis.same_content.same_content` (flash, motion, exposure,
camera), comparing the ``SIDE`` frames before it with the ``SIDE`` frames
from its end on; a multi-frame change run or cadence stretch must also change the picture's
palette (:func:`~curate.analysis.same_content.same_palette`: a stretch of
fast motion moves pixels, a transition brings other colours), and bring, frame
by frame, change that local motion does not explain
(:func:`~curate.analysis.same_content.explained_by_motion`: a bird turning to
the camera or a van driving past is per-block shifts, a wipe's edge or a
dissolve's blend is not), unless its sides bring new colours (``NEW_PALETTE``:
a slow dissolve between two moving shots changes each frame no more than their
motion does), as must a cut less than ``SUDDEN`` times the changes around it
(heavily compressed motion catching up in one frame).

"Camera" is overruled at once where the frames moved the picture less than
half a frame (``HARDLY_MOVED``): ends that match at a shift the frames never
came near are two pictures matching by chance (a jump cut into fast motion).
A slide is a pan over two pictures side by side, so "camera" is asked again
from its real ends (grown over its slow start and end) and overruled when
those ends match only at a shift the frames between never moved the picture
by (:func:`~curate.analysis.same_content.how_moved`; the frames hardly
moved): two pictures' broad light and dark areas can match at some shift by
chance; or when, so grown, they are no pan (a slide moves the picture, but
not by the shift its two pictures match at) and bring new colours.

A proposal that fails a check is dropped (it is not a boundary; ``dropped``
keeps why); an accepted gradual span grows over the still-changing frames at
its ends (a wipe's slow start) and then by its length more on each
side, at most ``faint_ends`` frames (an iris's or a soft wipe's first and
last frames change too little to see), and all are merged (overlapping spans, cuts
touching a span) into the answer.

TransNetV2 costs far more than decoding on a CPU, so it is asked only about
the 50-frame blocks where a cheap cue is active (an elevated change, a
gradual-detector candidate, a flat frame); elsewhere its probabilities count
as zero. ``transnet: "always"`` runs it on every block, ``"never"`` not at all
(the detector then needs no model). ``device`` (``DetectorConfig.device``,
not a parameter: it does not change clip ids) puts the model on a GPU, where
the pass keeps 82-90 % of its model-free throughput (bench/README.md, split).

Latency: a block is decided once 25 frames past it have been seen
(TransNetV2's context and the 50-frame median), as in
:class:`~curate.analysis.transnet.TransNetDetector`.
"""

from __future__ import annotations

from collections import deque
from statistics import median
from typing import Literal

import cv2
import numpy as np

from curate.analysis.detector import with_faint_ends
from curate.analysis.same_content import (FLASH_FRAMES, FLAT_STD, NEW_PALETTE, UNEXPLAINED_AROUND, Checks, block_matched_diff,
                                         continues_motion, diff, explained_by_motion, flash_end, how_moved, made_of_its_ends,
                                         moved_slightly, new_colours, palette, palette_change, same_content, same_palette)
from curate.analysis.shots import Boundary, GradualDetector, ShotDetector, merge_boundaries

__all__ = ["CombinedShotDetector", "block_matched_diff"]

WINDOW, STEP, CONTEXT = 100, 50, 25  # TransNetV2's windows (see curate.analysis.transnet)
LEVEL_HALF = 25  # frames either side for the local change level
# Where a plain cut (SUDDEN, not a flash) lies among those 50 frames, a frame's level is at least the median of its own
# shot's (OWN_SHOT changing frames or more): the turning cockatoo's last frames before a cut into the still cup stood out
# 3x from a window half filled by the cup, and joined the cut into a false transition (seed 765 at crf 38). Only ever
# raised: judged on its own shot alone, fire's many re-encoded repeats lowered its level and made a 52-frame run of it.
# On the 180 composites and 681-760 in other variants, no clip more or less holds a boundary; clips kept +27 of ~3900,
# gradual transitions found +19, false ones +2, false cuts as many; make bench's sets: one clip fewer (941-950).
OWN_SHOT = 8
KEEP = 240  # frames of 48x27 images kept for the same-content checks
REPEAT = 0.3  # mean RGB difference below which a frame repeats the previous one
SIDE = 5  # frames either side of a proposal for the same-content checks
GAP = 4  # frames of ordinary change that may interrupt one change run (a wipe's slow middle)
RAMP = 20  # at most this many frames of brightness ramp either side of a flat run
# An accepted gradual span is only what visibly changes: an iris, a diagonal or a soft wipe starts and ends with frames
# that change too little to stand out (on 40 development composites the detected core of a 4-12-frame iris missed up
# to its own length of faint frames; a 20-frame circle opening on seed 598 showed only its middle 6). So its length more
# (at most ``faint_ends`` frames, 6 by default) is excluded on each side. Half its length, until session 8, left 5 of
# 357 clips on seeds 521-600 holding a boundary (with the purity check) where its length leaves 3, at 5 of 352 clean
# clips (and 8 of 342 on the 70 development composites, none of which changed its 2).
# That costs clips where shots are barely longer than clips.min_s (bench/README.md "split").
# A cut's change must be this many times the largest change within 2 frames either side. A source that drops
# frames (29.97 fps shown at 25: box, cup, carphone) doubles one frame's motion, ~2x its neighbours'; on 20
# development composites such false cuts stood at 1.3-2.4x and every true cut (jump cuts too) at >= 2.3x.
STANDS_OUT = 2.0
# A one-frame change this many times the largest within 2 frames either side is new content even where per-block
# shifts could explain it (a jump cut in hand-held footage of one object): motion, a dropped frame, does not jump so.
# A cut below that must bring change that per-block shifts do not explain, as a multi-frame run must
# (same_content.explained_by_motion): heavy compression (x264 crf 38) holds small motion back in skipped blocks and
# lets it catch up in one frame, 2-3x the frames around it (a walking crowd, a hand-held cup), but no further from
# local motion than they are. Only a change of less than CATCH_UP x ``min_change`` is so judged: one of 31.8 grey levels
# in fast motion, the middle of a dissolve between two moving shots (seed 944), is new content although its neighbours,
# which hold the rest of the dissolve, leave it less than 2.5x their unexplained change.
# False cuts 9 -> 7 on 621-640 at crf 38 and 8 -> 6 on 521-600, no true boundary lost there, on 901-950
# or on the development composites.
SUDDEN = 4.0
CATCH_UP = 2.5
# A sudden quiet cut (SUDDEN x the changes around) below JOLT x ``min_change`` that moved the picture less than a pixel
# (same_content.moved_slightly) is a jolt of the camera, not a cut: x264 at crf 38 can hold the frames before a jolt
# back so far that it stands 4.1-4.4x above them. Such false cuts changed 1.7-5.4 grey levels (seeds 521, 573, 577,
# 901, 922 twice, 1075 twice, 1170 at crf 38); a jump cut in box.mp4 2.4 s on (seed 596), whose picture hardly moved
# either (0.31-0.35 left), changed 8.6-9.2 and stays a cut. On the 180 composites and 1051-1150 at 25 fps and crf 38:
# false cuts at crf 38 52 -> 44, nothing else changed (make bench and the development composites: nothing).
JOLT = 1.5
NEAR_REACH = 6  # frames the nearest change either side is looked for in where the 4 nearest barely change (5 fps at 30)
# A one-frame change of at least QUIET x ``min_change`` that is SUDDEN times every change within 2 frames either side
# is proposed as a cut even below ``min_change``: a jump cut on a locked-off camera of a quiet scene (vtest.avi's people
# 6 s apart: 3.7 grey levels against <= 1.0 around it) moves only what moved in between.
QUIET = 0.5
# Among repeats of a low-rate source (vtest.avi: 10 fps shown at 25; CADENCE_SHARE of the frames within NEAR_REACH),
# each change carries 2-3 frames of motion, so a jump cut stands out less from its nearest changes: 3.3-3.9x at seeds
# 679 (crf 38) and 758 (25, 30 fps, pillarboxed), which stayed in clips. Not among full-rate frames: there box.mp4's own
# jerk at 9.4 s (3.7-3.9x, in 6 composites) was taken for a cut. On the 180 composites, 681-760 in other variants and
# make bench's sets nothing else changed.
LOW_RATE_SUDDEN = 3.0
# A one-frame change is no cut where RECUR of the RECUR_REACH frames before it change RECUR_SHARE x as much (frames of
# a boundary found, a flash or a whip pan not counted): the footage itself changes so much every few frames. x264 at
# crf 38 turns fire2.mp4 (10.5 fps, flames) shown at 25 fps into a big update every 5 frames among small ones; each
# stood 4-5x above the 4 frames around it (STANDS_OUT, SUDDEN) and was taken for a cut: 14 of the 25 false cuts left
# on 1051-1150 at crf 38 (11 of them gone). Among 293 true cuts there (and 589 at 25 and 30 fps) none had two such
# frames before it; on the 180 composites at crf 38 false cuts 51 -> 36, no true boundary lost.
RECUR, RECUR_REACH, RECUR_SHARE = 2, 12, 0.7
# A change run into or out of fast motion (a pixelize from a still shot into the turning cockatoo) is not elevated
# against the 50 frames around it, which the motion fills. A run of frames CALM x ``ratio`` above the calmer side's
# level is proposed from its real ends (grown as an accepted span is) unless the ordinary way sees it: two or more of
# its frames elevated (a run, judged as one), or one that stands out as a cut (STANDS_OUT). One elevated frame that
# does not is a cut proposal judged on frames still inside the transition, dropped as motion: a smooth wipe from the
# cockatoo's beak at the lens to the still box (seed 633) stayed in a clip. Such a run is proposed when its sides
# differ in CALM_PALETTE of the pixels' colour bins (same_content.new_colours): 0.43-0.66 at seeds 630 and 633, where
# the van leaving the street of scene_cuts.mp4 (bikes.mp4 at 1280x272), which the ordinary way sees in one frame
# only, changes 0.15 (it became a false transition, and cost a clip, without this test).
# CALM was 2.0 until session 12: a 14-frame smooth wipe out of the cockatoo into the talking head (seed 564) changes
# 4-7x the head's level, as much as the bird does. At 1.5: clips holding a boundary (with the purity check) on
# 521-600 2/349 -> 1/347, gradual transitions found +2 there and on 621-660, +1-2 on 621-640 re-timed to 50 fps,
# pillarboxed and at crf 38; no false boundary added on any of those, 901-940 or the development composites; of the
# 21 shared videos only sintel_30s.mp4 changes (its last two spans join, 20 more frames in no clip).
# A run of one such frame is proposed too (grown from it), unless the ordinary way sees that frame: an 18-frame fade
# from vtest.avi into the cockatoo (seed 1154 pillarboxed), its frames 3.5-8.8 grey levels where the bird moves 2-7,
# rose 4.5x above vtest's level in one frame only, and a clip held it. On the 180 composites (25 fps, pillarboxed,
# crf 38), 1151-1180 in four variants, 1051-1150 (25 fps, crf 38), make bench's sets and the development composites:
# clips holding a boundary (with the purity check) 1 fewer, none more; gradual transitions found +6, false ones +7
# (6 of them at crf 38); clips kept -6 of ~5400.
# Of the 21 shared videos only sintel_30s.mp4 changes: its last two spans join (597-720), 20 frames more in no clip.
# Not where the ordinary way finds a cut or transition in the calmer side (that side is then another shot) ...
CALM = 1.5
CALM_PALETTE = 0.3  # the share of colour bins that lets a run the ordinary way saw in one frame through (above)
# ... only where the calmer side's CALM_GUARD frames next to the run hold no cut or transition found the ordinary way:
# a whip pan 20 frames into the calmer side (seed 415, an hlslice out of the cockatoo) is no reason to skip it.
CALM_GUARD = 12
# Cadence: a low-rate source shown at the container's rate (fire2.mp4: every other frame a re-encoded repeat; film,
# held animation frames) changes at most every other frame, a transition rendered at the container's rate changes
# every frame. Where CADENCE_SHARE of the CADENCE_WINDOW frames before a stretch of at least CADENCE_MIN frames that
# repeat nothing were repeats (or of those after it, and at least twice the share before), the stretch, at most
# CADENCE_SPAN frames (the longest transition looked for), is proposed; still footage, whose other frames hardly
# change either, has no cadence. A wipe out of fire changes each frame less than the fire does, so no change run
# finds it. The stretch already runs on into the footage on one side, so it is not grown and gets at most
# CADENCE_FAINT faint frames. On 70 development composites (seeds 401-420, 431-440, 461-500): clips still holding a
# boundary (with the purity check) 6 -> 2, gradual transitions missed 47 -> 40, false ones 34 -> 34, clean clips
# kept 365 -> 349 (still footage counted as a cadence: 33 missed, 36 false, 308 kept).
CADENCE_MIN, CADENCE_SPAN, CADENCE_WINDOW, CADENCE_SHARE, CADENCE_FAINT = 6, 26, 20, 0.3, 2
# Out of a low-rate source (CADENCE_SPAN frames without a repeat) a share of CADENCE_SOURCE is enough where the
# repeats do not come back after the stretch: a 20 fps camera shown at 25 (cockatoo.mp4) repeats every 5th frame,
# 0.2, and a horizontal close out of it into a 30 fps shot (seed 932), changing each frame no more than the bird
# does, stayed in a clip. Not where the other cues found a boundary in the stretch: the source changed there (a cut),
# and the stretch would only cost the next shot's first 26 frames (4-7 % of the clips). Bursts inside a source and
# stretches into one keep CADENCE_SHARE: re-encoded repeats of a source in slow motion are not all told from its
# changes; at 0.15 a flash in the cockatoo became a 30-frame boundary, and with bursts at 0.15 too 180 composites
# kept 7-8 % fewer clips.
# On 180 composites (seeds 521-600, 621-680, 901-940): clips holding a boundary (with the purity check) 3 -> 2 of
# ~820 at 25 fps and pillarboxed, 10 -> 10 at crf 38; gradual transitions found +5, +5, +1, false ones +3, +2, +3;
# clips +13, +17, +6.
CADENCE_SOURCE = 0.15
# Into a lower-rate source, a share of CADENCE_SOURCE is enough where the stretch went without MISSED_REPEATS of the
# repeats that source shows (20 frames at 0.15) and the source before it repeats too: no footage of two low-rate
# sources changes so long at their container's rate. Seed 788: a 20-frame wipe up out of the pancake toss (a repeat
# every 4th frame) into the cockatoo (every 5th), 9 frames after a whip pan, changes each frame less than the bird
# does, and the whip fills both the change runs' level and the purity check's windows before it; it stayed whole in a
# clip at 25 fps, pillarboxed and at crf 38. Not where another cue found a boundary in the stretch (it would only cost
# the next shot's first frames: 11 cuts on seeds 621-680 and 901-940 became 30-frame spans), nor where a flash or whip
# pan dropped in it breaks the cadence (the composites render them at the container's rate). On the 180 composites,
# 681-720 and 741-800 in other variants and make bench's sets: clips holding a boundary 3 fewer (seed 788), none
# more; false gradual transitions +2 (re-encoded repeats of fast motion taken for changes); clips kept -7 of ~4560.
MISSED_REPEATS = 3
# Out of a low-rate source, where the other cues found only gradual transitions in the stretch, the
# first starting more than 2 frames after the repeats stopped, the stretch is proposed from where they stopped to the
# end of those transitions: the source's own frames would have repeated. Seed 811 at 30 fps: a 23-frame pixelize out
# of vtest.avi (10 fps, 2 of 3 frames repeats) into the hand-held cup; the gradual detector found it from its 8th
# frame, which a clip kept. On the 180 composites, 681-720 and 741-820 in other variants and make bench's sets: that
# clip is the only one holding a boundary fewer; one span widened by 10 frames before a dissolve (seed 701 at crf 30)
# costs a clip.
# A change run longer than LONG_RUN frames is footage (a stream of big changes), judged only for the cuts in it:
# frames STANDS_OUT times every change within NEAR_REACH frames. 10 fps fire shown at 30 fps changes every third frame,
# ~50x its re-encoded repeats, so its 66 frames were one run with the cut into or out of them, and dropped whole: 4 of
# 61 cuts missed on seeds 681-700 re-timed to 30 fps (fire2.mp4's 2.2 s), 3 at 60 fps. (Against the 2 frames either
# side, as a cut in a shorter run is judged, fire changes stood out from the repeats: 48 and 63 more false cuts.)
LONG_RUN = 60
# A change run that local motion explains frame by frame, whose frames did not move the picture the way a pan does
# (same_content.how_moved), brings new colours with UNPANNED_PALETTE of the pixels in other colour bins (not
# NEW_PALETTE): a hard-edged wipe into fast motion (seed 301: the talking head in a car into the cockatoo at the lens)
# adds a strip of 3 px of 48 a frame that blocks of the bird's feathers match, and moved 38 % of the pixels to other
# bins; whip pans, which also reach other colours, track as pans (seeds 577, 902: 35-38 %). Of 293 runs dropped as
# motion on the 180 composites in three variants, 681-720 and 841-880 and the development sets, the 11 with 30-45 % new
# colours and 2x the sides' own change were 5 transitions, 5 whip pans and the turning cockatoo. On all of them and
# 881-900 in four variants: clips holding a boundary 1 -> 0 on the development composites; one false transition more
# (that cockatoo, at crf 38); nothing else changed but clips kept (+2, -1).
UNPANNED_PALETTE = 0.3
# A run whose grown ends are two pictures of one palette (they match only at a shift the frames never moved by, and
# every frame between is made of them) is a transition where the sides' closest pair still differs in TWO_PICTURES of
# the pixels' colour bins (not NEW_PALETTE, nor its spread): wipes, closes and dissolves between the hand-held cup,
# the box and the turning cockatoo (seeds 594, 670, 680, 920, 1054, 1065, 1067) moved 0.23-0.46 of the pixels; the
# cockatoo turning its head (the 15 others on the 180 composites at 25 fps and crf 38 and 1051-1070 in four variants,
# most of them one moment at 4.9 s) 0.07-0.09.
TWO_PICTURES = 0.15
# A proposal whose ends match at a shift (same_content's "camera": a whip pan) while its frames moved the picture by
# less than HARDLY_MOVED of the frame, and not by that shift (how_moved's "still" at this reach), is two pictures that
# match there by chance. A jump cut in the hand-held cockatoo into the bird turning fast (seed 1127, in 3 of 4
# variants) made one change run with the turn, whose ends matched at (12, -14) px where its frames moved (1, 11):
# 0.41 of the frame. Of such verdicts whose frames did not pan, on the 180 composites at 25 fps and 1051-1130 at
# 30 fps, the 24 at whip pans had moved the picture 0.65-2.1 frames; 8 moved it less than 0.5, 7 of them over a
# transition or a cut. On those composites in four variants, make bench's sets and the development composites: 1127
# found in three variants, and one clip fewer (seed 597 pillarboxed: a fade's span grew by 18 frames); nothing else.
HARDLY_MOVED = 0.5
# A side of a calmer-side run that repeated STILL_RUN frames in a row is a still picture (a title card, a freeze frame,
# a still shot that heavy compression turns into exact repeats): its level counts those repeats, where elsewhere
# repeats are left out (a 10 fps source's: 1-2 in a row at 25 fps). Left out, the still
# side had no level, or only that of a flash in it, and the calmer side was the fast motion on the other: a smooth
# wipe, an 8-frame dissolve or a pixelize from a still picture into the turning cockatoo were not proposed at all,
# nor a smooth wipe out of the box held still by x264 crf 38 (seed 693). On the 180 composites (25 fps, pillarboxed,
# crf 38) and 681-720 + 841-880 in five variants: gradual transitions found +8, false ones -1, clips holding a
# boundary without the purity check -9 and with it 1 fewer (seed 693 at crf 38); clips kept -2 of ~4360.
STILL_RUN = 8


def _stood_still(changes: list[float]) -> bool:
    """``STILL_RUN`` frames in a row repeated the one before (a still picture, not a low-rate source's repeats)."""
    run = 0
    for x in changes:
        run = run + 1 if x == 0.0 else 0
        if run >= STILL_RUN:
            return True
    return False


class _Tail:
    """Per-frame values indexed by frame number, keeping only the recent ones (memory stays flat on long videos).

    Frames already dropped read as 0.0 (a repeat: no change).
    """

    def __init__(self) -> None:
        self.off = 0
        self.v: list = []

    def append(self, x) -> None:
        self.v.append(x)

    def __len__(self) -> int:
        return self.off + len(self.v)

    def __getitem__(self, k):
        if isinstance(k, slice):
            start = max((k.start or 0) - self.off, 0)
            stop = len(self.v) if k.stop is None else max(k.stop - self.off, 0)
            return self.v[start:stop]
        return self.v[k - self.off] if k >= self.off else 0.0

    def trim(self, keep_from: int) -> None:
        drop = keep_from - self.off
        if drop > 2 * KEEP:
            del self.v[:drop]
            self.off = keep_from


class CombinedShotDetector(ShotDetector):
    """TransNetV2 + change runs + gradual detector, with flash and camera-motion checks (module docstring)."""

    def __init__(
        self,
        ratio: float = 3.0,
        min_change: float = 4.0,
        threshold: float = 0.5,
        span_threshold: float = 0.1,
        concentrated: float = 0.6,
        flash: float = 0.25,
        separation: float = 1.2,
        camera: float = 0.4,
        motion: float = 0.45,
        flat_std: float = FLAT_STD,
        faint_ends: int = 6,
        transnet: Literal["gated", "always", "never"] = "gated",
        gradual: bool = True,
        threads: int = 2,
        device: str = "cpu",
    ):
        if transnet not in ("gated", "always", "never"):
            raise ValueError(f"transnet must be gated, always or never, not {transnet!r}")
        self.ratio, self.min_change, self.threshold, self.span_threshold = ratio, min_change, threshold, span_threshold
        if faint_ends < 0:
            raise ValueError(f"faint_ends must be >= 0 frames, not {faint_ends}")
        self.concentrated, self.flat_std, self.faint_ends = concentrated, flat_std, faint_ends
        self.checks = Checks(flash, separation, camera, motion)
        self.transnet, self.threads = transnet, threads
        self.model = None
        if transnet != "never":
            from curate.analysis.transnet import load_model

            self.model = load_model(device)
        self._gradual = GradualDetector() if gradual else None
        self.transnet_blocks = [0, 0]  # blocks TransNetV2 ran on, blocks decided (for the benchmark)
        self._img: deque[np.ndarray] = deque(maxlen=KEEP)  # 48x27 RGB uint8, frame _last - len + 1 ..
        self._first: np.ndarray | None = None
        self._last = -1
        self._d = _Tail()  # change into frame i (0.0 for a repeat)
        self._line = _Tail()  # the most changed row or column into frame i (a wipe's edge)
        self._mean = _Tail()
        self._flat = _Tail()
        self._splits: list[int] = []  # frames of plain cuts (_plain_cut), which the change level does not reach over
        self._split_flash_to = -1  # last frame of the latest flash _plain_cut saw
        self._cue = False  # a gradual-detector candidate or a flat frame since the last block
        self._next = 0  # first frame of the next block to decide
        self._run: list[int] | None = None  # open change run [first, last elevated frame]
        self._calm: list | None = None  # open run against the calmer side [first, last, any frame elevated the ordinary way]
        self._flash_to = -1  # last frame of the latest flash (_in_flash)
        self._tn: list | None = None  # open TransNetV2 region [first, last, peak]
        self._flat_run: list[int] | None = None  # open flat run [first, last]
        self._fresh: int | None = None  # first frame of the current stretch of frames that repeat nothing
        self._pending: list[Boundary] = []  # accepted, not yet reported
        self.dropped: list[tuple[str, Boundary]] = []
        self.accepted: list[tuple[str, Boundary]] = []  # (source, proposal) before merging  # proposals the checks rejected ("flash" / "camera")

    # --- frames ----------------------------------------------------------------
    @property
    def _held_from(self) -> int:
        """The oldest frame still held in ``_img``."""
        return self._last - len(self._img) + 1

    def _frame(self, i: int) -> np.ndarray:
        lo = self._held_from
        return self._img[min(max(i, lo), self._last) - lo]

    def process_frame(self, index: int, small_bgr: np.ndarray) -> list[Boundary]:
        rgb = cv2.cvtColor(cv2.resize(small_bgr, (48, 27), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        if self._first is None:
            self._first = rgb
        if self._img:
            px = cv2.absdiff(rgb, self._img[-1]).mean(axis=2)
            d = float(px.mean())
            line = max(float(px.mean(axis=1).max()), float(px.mean(axis=0).max()))
        else:
            d = line = 0.0
        self._img.append(rgb)
        self._last = index
        self._d.append(d if d >= REPEAT else 0.0)
        self._line.append(line if d >= REPEAT else 0.0)
        mean, std = cv2.meanStdDev(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        self._mean.append(float(mean[0, 0]))
        self._flat.append(float(std[0, 0]) < self.flat_std)
        if self._plain_cut(index - NEAR_REACH):
            self._splits.append(index - NEAR_REACH)
        self._cue |= bool(self._flat[index])
        if self._gradual is not None:
            for b in self._gradual.process_frame(index, small_bgr):
                self._propose(b, "gradual")
            self._cue |= self._gradual._span is not None or bool(self._gradual._runs)
        while self._last >= self._next + STEP + CONTEXT - 1:
            self._block()
        return self._report(final=False)

    def post_process(self, last_index: int) -> list[Boundary]:
        while self._next <= self._last:
            self._block()
        self._close_run()
        self._close_calm()
        self._close_tn()
        self._close_flat()
        if self._gradual is not None:
            for b in self._gradual.post_process(last_index):
                self._propose(b, "gradual")
        return self._report(final=True)

    # --- one block of 50 frames ---------------------------------------------------
    def _plain_cut(self, k: int) -> bool:
        """The change into frame ``k`` is at least ``min_change`` and ``SUDDEN`` times the largest within 2 frames
        either side (or, where those repeat, the nearest change either side within ``NEAR_REACH``). Not ``_sudden``:
        its ``_near`` asks ``_level``, which these cuts bound."""
        if k < 1 or self._d[k] < self.min_change or k <= self._split_flash_to:
            return False
        sides = self._either_side(k)
        near = [x for side in sides for x in side[:2]]
        if not any(near):
            near = [next((x for x in side if x > 0.0), 0.0) for side in sides]
        if self._d[k] < SUDDEN * max(near, default=0.0):
            return False
        ks = range(k + 1, min(k + FLASH_FRAMES + 2, self._last + 1))
        j = flash_end(self._frame(k - 1), self._frame(k), [self._frame(x) for x in ks], self.checks.flash)
        if j is not None:  # a flash and its return are no cuts
            self._split_flash_to = ks[j]
            return False
        return True

    def _level(self, values: _Tail, i: int, calm_side: bool = False, still: bool = False) -> float:
        """Median change of the 50 frames around ``i``; of the calmer 25 with ``calm_side``. Where a plain cut
        (``_plain_cut``) lies among them, at least the median of ``i``'s own shot's (if it has ``OWN_SHOT``).

        With ``still``, a side that repeated ``STILL_RUN`` frames in a row counts its repeats (a still picture)."""
        lo, hi = max(i - LEVEL_HALF, 1), min(i + LEVEL_HALF + 1, len(values))
        raw = (values[lo:i], values[i + 1 : hi])
        sides = [side if still and _stood_still(side) else [x for x in side if x > 0.0] for side in raw]
        # statistics.median: these lists hold at most 50 floats, where numpy's call overhead is 20x the sort
        if calm_side:  # a long wipe fills much of one side, never both
            return min((float(median(side)) for side in sides if side), default=0.0)
        around = sides[0] + sides[1]
        level = float(median(around)) if around else 0.0
        own_lo = max([c + 1 for c in self._splits if lo <= c < i], default=lo)
        own_hi = min([c for c in self._splits if i < c < hi], default=hi)
        if (own_lo, own_hi) != (lo, hi):
            own = [x for x in values[own_lo:i] + values[i + 1 : own_hi] if x > 0.0]
            if len(own) >= OWN_SHOT:
                level = max(level, float(median(own)))
        return level

    def _elevated(self, i: int, ratio: float, calm_side: bool = False, still: bool = False) -> bool:
        """The change into frame ``i``, or its most changed row or column (a wipe), stands out from the 50 frames around."""
        if i <= 0 or i >= len(self._d):
            return False
        d, line = self._d[i], self._line[i]
        return (d >= self.min_change and d >= ratio * self._level(self._d, i, calm_side, still)) or (
            line >= 4 * self.min_change and line >= ratio * self._level(self._line, i, calm_side, still))

    def _quiet_jump(self, i: int) -> bool:
        """The change into frame ``i`` is below ``min_change`` but ``SUDDEN`` times every change within 2 frames
        (``QUIET``), or ``LOW_RATE_SUDDEN`` times among the repeats of a low-rate source."""
        d = self._d[i] if 0 < i < len(self._d) else 0.0
        if not QUIET * self.min_change <= d < self.min_change:
            return False
        around = [x for side in self._either_side(i) for x in side]
        low_rate = sum(x == 0.0 for x in around) >= CADENCE_SHARE * len(around)
        return d >= (LOW_RATE_SUDDEN if low_rate else SUDDEN) * self._near(i)

    def _either_side(self, i: int) -> list[list[float]]:
        """The changes into the ``NEAR_REACH`` frames before frame ``i`` and after it, nearest first (those held)."""
        return [[self._d[k] for k in range(i + step, i + step * (NEAR_REACH + 1), step) if 0 < k < len(self._d)] for step in (-1, 1)]

    def _near(self, i: int) -> float:
        """The largest change into a frame within 2 frames either side of frame ``i`` (0.0 where there is none).

        Where all 4 of those frames barely change (below half the level around: repeats of a low-rate source, or
        re-encoded ones), the nearest change either side that does, at most ``NEAR_REACH`` frames away: a 10 fps
        camera shown at 30 fps changes every third frame, and each change stood out as a cut. (At 25 fps it changes
        every 2-3 frames, so one side always holds a change.) So too where one of them repeats its frame and frame
        ``i`` changes at least ``min_change``: heavy compression leaves a jerky low-rate source's repeats only
        partly repeated (2-5 grey levels after a change of 23 at x264 crf 38, 0.5-8 at crf 20), and each of its
        changes stood out from them as a cut. (A jump cut on a quiet locked-off camera, below ``min_change``, is
        still judged against the 4 frames: ``QUIET``.) Where no change on a side reaches half the level (a whip pan or
        a transition nearby lifts it), the largest change on that side: vtest.avi (10 fps) at 30 fps beside a whip pan
        changes 1-3 grey levels every third frame, and each change stood out from nothing as a cut (seed 1103).
        """
        sides = self._either_side(i)
        near = [x for side in sides for x in side[:2]]
        still = 0.5 * self._level(self._d, i)
        repeats = 0 < i < len(self._d) and self._d[i] >= self.min_change and 0.0 in near
        if near and (max(near) < still or repeats):
            near += [next((x for x in side if x >= still), max(side, default=0.0)) for side in sides]
        return max(near, default=0.0)

    def _sudden(self, i: int) -> bool:
        """A cut that no cue doubts: the change into frame ``i`` is at least ``min_change`` and ``SUDDEN`` times every
        change within 2 frames (a flash's return, a dropped frame's doubled motion and fast motion are not)."""
        return 0 < i < len(self._d) and self._d[i] >= max(self.min_change, SUDDEN * self._near(i))

    def _extend(self, b: Boundary) -> Boundary:
        """Grow an accepted gradual span over the changing frames either side (a wipe's slow start and end).

        Judged against the calmer side's level, at most ``RAMP`` frames each way;
        repeated frames neither extend nor stop it.
        """
        s, e = b.start, b.end
        lo = max(s - RAMP, 1)
        k = s - 1
        while k >= lo and (self._d[k] == 0.0 or self._elevated(k, self.ratio / 2, calm_side=True)):
            if self._d[k] > 0.0:
                s = k
            k -= 1
        hi = min(b.end + RAMP, len(self._d) - 1)
        k = e
        while k <= hi and (self._d[k] == 0.0 or self._elevated(k, self.ratio / 2, calm_side=True)):
            if self._d[k] > 0.0:
                e = k + 1
            k += 1
        return Boundary(s, max(e, b.end))

    def _block(self) -> None:
        b0, b1 = self._next, min(self._next + STEP, self._last + 1)
        # TransNetV2 adds nothing to a sudden cut, which is accepted on its own: it is asked where another cue is active
        lone_cut = self._run is not None and self._run[0] == self._run[1] and self._sudden(self._run[0])
        active = (self._cue or self._tn is not None or (self._run is not None and not lone_cut)
                  or any(self._elevated(i, self.ratio) and not self._sudden(i) for i in range(b0, b1)))
        ps = pm = None
        run_tn = self.transnet == "always" or (self.transnet == "gated" and active)
        if self.model is not None and run_tn:
            ps, pm = self._predict(b0, b1)
            self.transnet_blocks[0] += 1
        self.transnet_blocks[1] += 1
        self._cue = False
        for j, i in enumerate(range(b0, b1)):
            elevated = self._elevated(i, self.ratio)
            self._step_run(i, (elevated or self._quiet_jump(i)) and not self._in_flash(i))
            self._step_calm(i, i > self._flash_to and self._elevated(i, CALM * self.ratio, calm_side=True, still=True), elevated)
            self._step_cadence(i)
            self._step_flat(i)
            if ps is not None:
                self._step_tn(i, ps[j], pm[j])
            elif self._tn is not None:
                self._close_tn()
        self._next = b1
        keep = min([self._open_from()] + [b.start for b in self._pending]) - KEEP
        for series in (self._d, self._line, self._mean, self._flat):
            series.trim(keep)
        self._splits = [c for c in self._splits if c >= keep]

    def _in_flash(self, i: int) -> bool:
        """Frame ``i`` belongs to a flash: its change is elevated and the picture before it returns within
        ``FLASH_FRAMES`` frames (noted in ``dropped``). Found before change runs form, so a flash in fast motion
        does not join the motion into one run whose sides differ by the motion alone."""
        if i <= self._flash_to:
            return True
        ks = range(i + 1, min(i + FLASH_FRAMES + 2, self._last + 1))
        j = flash_end(self._frame(i - 1), self._frame(i), [self._frame(k) for k in ks], self.checks.flash)
        if j is not None:
            self._flash_to = ks[j]
            self.dropped.append(("flash", Boundary(i, ks[j])))
            return True
        return False

    def _predict(self, b0: int, b1: int) -> tuple[list[float], list[float]]:
        from curate.analysis.transnet import predict

        idx = np.clip(np.arange(b0 - CONTEXT, b0 + STEP + CONTEXT), 0, self._last)
        lo = self._held_from
        window = np.stack([self._first if i < lo else self._img[i - lo] for i in idx])
        single, many = predict(self.model, window, self.threads)
        n = b1 - b0
        return single[CONTEXT : CONTEXT + n], many[CONTEXT : CONTEXT + n]

    # --- proposals -------------------------------------------------------------------
    def _repeat(self, i: int) -> bool:
        """Frame ``i`` repeats the one before: no change, or a tenth of the changes around it (a re-encoded
        duplicate of a low-rate source differs a little)."""
        d = self._d[i]
        return d == 0.0 or d < 0.1 * self._level(self._d, i)

    def _repeats(self, a: int, b: int) -> float:
        """The share of ``CADENCE_WINDOW`` frames that are repeats among frames ``a .. b - 1`` (those held); 0 where
        the others hardly change either (still footage is no low-rate source)."""
        ks = range(max(a, 1), min(b, self._last + 1))
        moving = [self._d[k] for k in ks if not self._repeat(k)]
        if not moving or median(moving) < self.min_change / 2:
            return 0.0
        return (len(ks) - len(moving)) / CADENCE_WINDOW

    def _step_cadence(self, i: int) -> None:
        """Propose the frames where a low-rate source's repeats stop or start (``CADENCE_SHARE``, ``CADENCE_SOURCE`` above)."""
        if self._repeat(i):
            if self._fresh is not None:
                s, n = self._fresh, i - self._fresh
                self._fresh = None
                if n >= CADENCE_MIN:
                    s = max(s, i - CADENCE_SPAN)
                    before = self._repeats(s - CADENCE_WINDOW, s)
                    after = self._repeats(i, i + CADENCE_WINDOW)
                    if before >= CADENCE_SHARE and n < CADENCE_SPAN:  # a burst of changes inside a low-rate source
                        self._propose(Boundary(s, i), "cadence")
                    elif before <= after / 2 and (after >= CADENCE_SHARE or self._missed_repeats(s, i, n, before, after)):
                        self._propose(Boundary(s, i), "cadence")  # into a lower-rate source
            return
        if self._fresh is None:
            self._fresh = i
        elif i - self._fresh == CADENCE_SPAN:
            s = self._fresh
            before = self._repeats(s - CADENCE_WINDOW, s)
            # out of a low-rate source: below CADENCE_SHARE only where its repeats do not come back after the stretch
            back = before < CADENCE_SHARE and self._repeats(i, i + CADENCE_WINDOW) > before / 2
            if before >= CADENCE_SOURCE and not back:
                found = self._found(s, i)
                if not found:
                    self._propose(Boundary(s, i), "cadence")
                elif not any(x.is_cut for x in found) and min(x.start for x in found) > s + 2:
                    # a transition the other cues found starts after the repeats stopped (see below MISSED_REPEATS)
                    self._propose(Boundary(s, max(x.end for x in found)), "cadence")

    def _missed_repeats(self, s: int, i: int, n: int, before: float, after: float) -> bool:
        """The ``n`` fresh frames up to frame ``i`` (from ``s`` on) lie between two low-rate sources and went without
        ``MISSED_REPEATS`` of the repeats the source after them shows (the comment above ``MISSED_REPEATS``), and
        neither another cue's boundary nor a flash or whip pan dropped in them explains that."""
        return (before > 0.0 and after >= CADENCE_SOURCE and n * after >= MISSED_REPEATS and not self._found(s, i)
                and not self._dropped_over(s, i, ("flash", "camera")))

    def _dropped_over(self, a: int, b: int, whys: tuple[str, ...]) -> bool:
        """A flash or whip pan (``whys``) the checks dropped lies in frames ``a .. b``."""
        return any(why in whys and x.start <= b and a <= x.end for why, x in self.dropped)

    def _found(self, a: int, b: int) -> list[Boundary]:
        """The boundaries the other cues found in frames ``a - 2 .. b`` (then the source changed there)."""
        return [x for src, x in self.accepted if src != "cadence" and x.start <= b and a - 2 <= max(x.end, x.start)]

    def _ended(self, i: int, last: int) -> bool:
        """A run whose last elevated frame is ``last`` is over at frame ``i``: more than ``GAP`` frames on, at a frame
        that changes (repeats of a low-rate source inside a transition do not end it), or after ``LONG_RUN`` frames
        of repeats (a still slide: a talk's slide changes, all repeats between them, were one run from the first to the
        last, which held back every clip of the talk). Not sooner: a 10 fps camera standing still for a second
        (vtest.avi) repeats 26 frames between a small change and the jump cut that the run judges with it."""
        return i - last > GAP and (self._d[i] > 0.0 or i - last > LONG_RUN)

    def _step_run(self, i: int, elevated: bool) -> None:
        if elevated:
            if self._run is None:
                self._run = [i, i]
            else:
                self._run[1] = i
        elif self._run is not None and self._ended(i, self._run[1]):
            self._close_run()

    def _step_calm(self, i: int, calm: bool, elevated: bool) -> None:
        if calm:
            self._calm = [i, i, elevated] if self._calm is None else [self._calm[0], i, self._calm[2] or elevated]
        elif self._calm is not None and self._ended(i, self._calm[1]):
            self._close_calm()

    def _close_calm(self) -> None:
        if self._calm is None:
            return
        s, e, ordinary = self._calm
        self._calm = None
        seen = [k for k in range(s, e + 1) if self._elevated(k, self.ratio)] if ordinary else []
        if (e == s and ordinary) or len(seen) > 1 or any(self._d[k] >= STANDS_OUT * self._near(k) for k in seen):
            return  # the ordinary change runs see it: a run, or a cut that stands out, is judged as such
        sides = [range(max(s - LEVEL_HALF, 1), s), range(e + 1, min(e + LEVEL_HALF + 1, len(self._d)))]
        calmer = min((side for side in sides if any(self._d[k] > 0.0 for k in side)),
                     key=lambda side: median([self._d[k] for k in side if self._d[k] > 0.0]), default=range(0))
        if any(self._elevated(k, self.ratio) for k in (calmer[:CALM_GUARD] if calmer.start > s else calmer[-CALM_GUARD:])):
            return  # a cut or transition on the calmer side, next to the run: that side may be another shot
        grown = self._extend(Boundary(s, e))  # but not over a cut the ordinary runs found: that is another shot
        cuts = [k for k in range(grown.start, grown.end + 1) if not s <= k <= e and self._elevated(k, self.ratio)]
        start, end = max([k + 1 for k in cuts if k < s], default=grown.start), min([k for k in cuts if k > e], default=grown.end)
        b = Boundary(start, max(end, e))
        if seen and not self._new_colours(b, CALM_PALETTE):
            return  # the one frame the ordinary way saw was judged already: only other colours either side overrule it
        self._propose(b, "calm")

    def _close_run(self) -> None:
        if self._run is None:
            return
        s, e = self._run
        self._run = None
        if e - s > LONG_RUN:  # a long stream of big changes is footage, not a transition, but a cut into it stands out
            for k in range(s, e + 1):
                around = [x for side in self._either_side(k) for x in side]
                if self._d[k] >= max(self.min_change, STANDS_OUT * max(around, default=0.0)):
                    self._propose(Boundary(k, k), "change")
            return
        c = max(range(s, e + 1), key=lambda k: self._d[k])
        if s == e or self._d[c] >= self.concentrated * sum(self._d[s : e + 1]):
            self._propose(Boundary(c, c), "change")
            return
        self._propose(Boundary(s, e), "change")
        if self._d[c] >= STANDS_OUT * self._near(c):
            # a cut into or out of fast motion (fire) joins the motion into the run, whose ends may even match; a
            # jump cut in a pancake toss joins the pan 3 frames on: judged as a cut alone, as one outside a run is
            self._propose(Boundary(c, c), "change")

    def _step_tn(self, i: int, s: float, m: float) -> None:
        if s > self.threshold or m > self.span_threshold:
            if self._tn is None:
                self._tn = [i, i, s]
            else:
                self._tn[1], self._tn[2] = i, max(self._tn[2], s)
        elif self._tn is not None:
            self._close_tn()

    def _close_tn(self) -> None:
        if self._tn is None:
            return
        s, e, peak = self._tn
        self._tn = None
        if peak > self.threshold:  # TransNetV2 flags the last frame of the old shot
            self._propose(Boundary(s + 1, s + 1) if s == e else Boundary(s, e + 1), "transnet")

    def _step_flat(self, i: int) -> None:
        if self._flat[i] and self._mean[i] >= 12.0:  # dark runs are the gradual detector's
            if self._flat_run is None:
                self._flat_run = [i, i]
            else:
                self._flat_run[1] = i
        elif self._flat_run is not None:
            self._close_flat()

    def _close_flat(self) -> None:
        if self._flat_run is None:
            return
        s, e = self._flat_run
        self._flat_run = None
        # the ramps into and out of the flat frames: each step moves towards the flat picture
        flat, lo, hi = self._frame(s), max(s - RAMP, self._last - KEEP + 2, 1), min(e + RAMP, self._last)
        while s > lo and diff(self._frame(s - 1), flat) > diff(self._frame(s), flat) + 1.0:
            s -= 1
        flat = self._frame(e)
        while e < hi and diff(self._frame(e + 1), flat) > diff(self._frame(e), flat) + 1.0:
            e += 1
        self._propose(Boundary(s, e + 1), "flat")

    def _propose(self, b: Boundary, source: str) -> None:
        why = self._same_content(b, source)
        if why == "camera" and self._how_moved(b, HARDLY_MOVED) == "still":
            why = None  # ends that match at a shift its frames hardly moved the picture by: two pictures (above)
        if why == "camera":  # a slide's first part is the old picture shifted: judged from its real ends
            grown = self._extend(b)
            again = self._same_content(grown, source)
            how = self._how_moved(grown) if again == "camera" else None
            # Ends that match only at a shift where the frames hardly moved are two pictures, new colours or not: fire
            # into the cockatoo by slices (seed 857) matched at (20, 10) px, its frames moved (0, 1), and it was dropped
            # for want of new colours. Frames that moved elsewhere may be a whip pan in a moving shot: colours decide.
            # Grown ends no longer one picture shifted are a transition with new colours, or two pictures of one
            # palette its frames are made of (a 6-frame dissolve from the box into the cockatoo, pillarboxed, seed 1054).
            grown_apart = again is None and grown != b
            if (how == "still" or (grown_apart or how == "moved") and self._new_colours(grown)
                    or grown_apart and self._two_pictures(grown)):
                b, why = grown, None
        elif why == "motion" and source == "change":
            # a run that stands out from the shot before covers a transition's middle only (a pixelize out of the
            # pancake toss, seed 594) or its end and the motion after it (a dissolve into the turning cockatoo, seed
            # 910): its sides are transition frames, one picture moved. Grown to its real ends, as a slide's, it is a
            # transition where local motion no longer explains its frames and new colours lie either side; not grown
            # over a flash (the turning cockatoo after one brings new colours too). The cockatoo pulling its head back
            # (cockatoo.mp4, 151-166) brings new colours as well, but its grown frames are still motion. Sides of one
            # palette (a corner wipe from the hand-held cup into the box, seed 1067; a vertical close from the box into
            # the cockatoo, 1065) are two pictures where they match only at a shift the frames never moved by ("still")
            # and every frame between is made of them (a car passing close to the camera in bikes.mp4 is neither).
            # One frame of a wipe may stand out alone and be judged as a cut into motion (a vertical-slice wipe out of
            # the turning cockatoo, seed 1095); grown, it is a transition only where its ends are two pictures and it
            # reaches no cut that stands out: new colours alone let a recurring fast moment through 7 times on the
            # 180 composites pillarboxed, two of them at a flash.
            grown = self._extend(b)
            if (grown != b and not self._dropped_over(grown.start, grown.end, ("flash",)) and not self._explained(grown)
                    and not (b.is_cut and any(self._sudden(k) for k in range(grown.start, grown.end + 1)))
                    and self._same_content(grown, source) is None
                    and (self._two_pictures(grown) if b.is_cut else (self._new_colours(grown) or self._two_pictures(grown)))):
                b, why = grown, None
        if why in ("motion", "palette") and source == "change" and not b.is_cut:
            # a calmer-side run stops at the first frame the ordinary runs see, taking it for another shot's cut; where
            # that run is no transition judged on its own sides, which the calmer-side run's transition fills, it is
            # the rest of that transition (a 43-frame pixelize at 60 fps, seed 707, ended 5 analysed frames early and
            # the next clip held its last ones; on 180 composites and 681-720 in other variants nothing else changed)
            joined = [a for src, a in self.accepted if src == "calm" and a.start <= b.end + 2 and b.start <= a.end + 2]
            if len(joined) == 1:
                union = Boundary(min(b.start, joined[0].start), max(b.end, joined[0].end))
                if self._same_content(union, source) is None:
                    b, why = union, None
        if why is None:
            if not b.is_cut:
                # a cadence stretch already runs on into the footage on one side (a frame or two for the other); a
                # calmer-side run is grown already, not over a cut
                grown = b if source in ("cadence", "calm") else self._extend(b)
                most = min(self.faint_ends, CADENCE_FAINT) if source == "cadence" else self.faint_ends
                b = with_faint_ends(grown, 0, self._last + 1, most, 1)
            self._pending.append(b)
            self.accepted.append((source, b))
        else:
            self.dropped.append((why, b))

    def _same_content(self, b: Boundary, source: str) -> str | None:
        """Why ``b`` is no boundary (:func:`~curate.analysis.same_content.same_content`), or None when it is one.

        Compares the ``SIDE`` frames before ``b`` with the ``SIDE`` frames from
        its end on; a multi-frame change run, calmer-side run or cadence stretch (``source``
        "change", "calm", "cadence") whose sides share one palette, or whose change
        per-block shifts explain frame by frame (and that brings no new colours), is motion
        (:func:`~curate.analysis.same_content.same_palette`, :func:`~curate.analysis.same_content.explained_by_motion`),
        as is a cut below ``SUDDEN`` times the changes around it that they explain or whose change continues the
        motion into the frames either side (:func:`~curate.analysis.same_content.continues_motion`: a dropped frame),
        and a quiet one that sub-pixel shifts explain (:func:`~curate.analysis.same_content.moved_slightly`).
        """
        lo = self._held_from
        s, e = b.start, max(b.end, b.start)
        near = self._near(s)
        if b.is_cut and 0 < self._d[s] < STANDS_OUT * near:
            return "motion"  # one frame of doubled motion (a dropped frame), not new content
        if b.is_cut and self._recurring(s):
            return "motion"  # the footage changes so much every few frames (fire under heavy compression)
        if s - 1 < max(lo, 0):
            return None
        before = [self._frame(k) for k in range(max(s - SIDE, lo), s)]  # fewer at the video's start
        inside = [self._frame(k) for k in range(s, e + 1)]
        after = [self._frame(k) for k in range(e, min(e + SIDE, self._last + 1))]
        why = same_content(before, inside, after, b.is_cut, self.checks)
        sudden = b.is_cut and self._d[s] >= SUDDEN * near  # no motion changes one frame so much more than those around it
        if (sudden and why in (None, "motion") and self._d[s] < JOLT * self.min_change
                and moved_slightly(self._frame(s - 1), self._frame(s))):
            return "motion"  # a jolt: it moved the picture less than a pixel, however suddenly (JOLT)
        if why == "motion" and sudden:
            return None
        if why is None and b.is_cut and not sudden and continues_motion([self._frame(k) for k in range(s - 2, s + 2)]):
            return "motion"  # a dropped frame: the motion either side goes on through it
        if why is not None or len(after) < 2 or (b.is_cut and (sudden or self._d[s] >= CATCH_UP * self.min_change)):
            return why
        if not b.is_cut:
            if source not in ("change", "cadence", "calm"):
                return None
            if same_palette(before, after):
                return "palette"
        if not self._explained(b) and not (b.is_cut and moved_slightly(self._frame(s - 1), self._frame(s))):
            return None
        # But motion within one shot keeps its colours: a 23-frame pixelize from the turning cockatoo into the blue-armed
        # cup at 30 fps (seed 717) changed each frame no more than the two shots' motion, yet half its pixels changed
        # colour bins (the purity check's rule for its spatial regions). On 180 composites (25 fps, pillarboxed,
        # crf 38) and seeds 681-720 (24, 30, 60 fps, crf 30): gradual transitions found +6 (and +1 on 941-950), one clip
        # holding a boundary fewer, one false transition more (a whip pan bringing the cup and arm into a white frame).
        if b.is_cut:
            return "motion"
        return None if self._new_colours(b, NEW_PALETTE if self._how_moved(b) == "pan" else UNPANNED_PALETTE) else "motion"

    def _recurring(self, s: int) -> bool:
        """At least ``RECUR`` of the ``RECUR_REACH`` frames before frame ``s`` change ``RECUR_SHARE`` x as much as it
        does, not counting the frames of a boundary found, a flash or a whip pan: the footage itself changes so much
        every few frames, and this change is one more of them."""
        bar = RECUR_SHARE * self._d[s]
        taken = [x for _, x in self.accepted] + [x for why, x in self.dropped if why in ("flash", "camera")]
        big = [k for k in range(max(s - RECUR_REACH, self._held_from + 1), s) if self._d[k] >= bar]
        return sum(not any(x.start - 1 <= k <= max(x.end, x.start) + 1 for x in taken) for k in big) >= RECUR

    def _explained(self, b: Boundary) -> bool:
        """Frame by frame, local motion explains the change into ``b``'s frames as well as the change around them
        (:func:`~curate.analysis.same_content.explained_by_motion`)."""
        lo = self._held_from
        s, e = b.start, max(b.end, b.start)
        k0 = max(s - UNEXPLAINED_AROUND, lo)
        frames = [self._frame(k) for k in range(k0, min(e + UNEXPLAINED_AROUND, self._last) + 1)]
        return explained_by_motion(frames, s - k0, e - k0)

    def _spanned(self, b: Boundary) -> list[np.ndarray]:
        """``b``'s frames from the last one before it to the first one after it (``b.start - 1`` to ``b.end``)."""
        return [self._frame(k) for k in range(b.start - 1, max(b.end, b.start) + 1)]

    def _how_moved(self, b: Boundary, still: float | None = None) -> str:
        """How the frames of ``b`` moved the picture against the shift its sides match at
        (:func:`~curate.analysis.same_content.how_moved`): a pan, still (two pictures), or moved by another shift."""
        return how_moved(self._spanned(b), flat_std=self.flat_std, still=still)

    def _two_pictures(self, b: Boundary) -> bool:
        """The sides of ``b`` differ in ``TWO_PICTURES`` of their colours, match only at a shift its frames never moved
        the picture by, and its frames are made of them (:func:`~curate.analysis.same_content.made_of_its_ends`): a
        wipe or dissolve between shots of one palette."""
        before, after = self._palettes(b)
        return (bool(before and after) and palette_change(before, after)[0] >= TWO_PICTURES
                and made_of_its_ends(self._spanned(b)) and self._how_moved(b) == "still")

    def _palettes(self, b: Boundary) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """:func:`~curate.analysis.same_content.palette` of the ``SIDE`` frames before ``b`` and from its end on."""
        lo, e = self._held_from, max(b.end, b.start)
        return ([palette(self._frame(k)) for k in range(max(b.start - SIDE, lo), b.start)],
                [palette(self._frame(k)) for k in range(e, min(e + SIDE, self._last + 1))])

    def _new_colours(self, b: Boundary, share: float = NEW_PALETTE) -> bool:
        """The ``SIDE`` frames before ``b`` and from its end on bring other colours
        (:func:`~curate.analysis.same_content.new_colours`)."""
        return new_colours(*self._palettes(b), share)

    # --- reporting ---------------------------------------------------------------------
    def _open_from(self) -> int:
        reach = RAMP + self.faint_ends  # an accepted span grows back over its ramp and its faint ends
        starts = [self._next - reach]  # a flat run yet to come may reach back so far
        for r in (self._run, self._calm, self._tn, self._flat_run):
            if r is not None:
                starts.append(r[0] - reach)
        if self._fresh is not None:  # a cadence proposal reaches back at most CADENCE_SPAN frames
            starts.append(max(self._fresh, self._next - CADENCE_SPAN) - reach)
        if self._gradual is not None:
            starts.append(self._gradual.settled() - reach)
        return min(starts)

    def _report(self, final: bool) -> list[Boundary]:
        if not self._pending:
            return []
        merged = merge_boundaries(self._pending, 2)
        if final:
            self._pending = []
            return merged
        limit = self._open_from() - 3  # a later proposal may still merge with anything closer
        out = [b for b in merged if max(b.end, b.start) < limit]
        self._pending = [b for b in merged if max(b.end, b.start) >= limit]
        return out

    def settled(self) -> int:
        frontier = min(self._open_from() - 3, self._last + 1)
        if self._pending:
            frontier = min(frontier, min(b.start for b in self._pending))
        return max(frontier, 0)
