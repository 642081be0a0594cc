"""Black bars cut off before shot detection and the purity check (curate.analysis.borders, issue 8)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from curate.analysis.borders import LIT_FRAMES, LOOKAHEAD, MAX_LOOKAHEAD, Bars, Cropper, PurityWithoutBars, WithoutBars
from curate.analysis.detector import Boundary
from curate.analysis.detectors import build_detector, build_purity
from curate.analysis.shots import ShotDetector
from curate.config import PurityConfig
from curate.synth_transitions import build_hard_set
from tests.test_shots import detect
from tests.test_split_hard import _quality

H, W = 54, 96


def _frame(value: int = 120, bars: tuple[int, int] = (0, 0), seed: int = 0) -> np.ndarray:
    """A textured BGR frame with black bars ``(rows, columns)`` on each side."""
    rng = np.random.default_rng(seed)
    f = rng.integers(value - 60, value + 60, (H, W, 3)).astype(np.uint8)
    r, c = bars
    f[:r], f[H - r:], f[:, :c], f[:, W - c:] = 0, 0, 0, 0
    return f


def _decided(frames) -> Bars:
    bars = Bars()
    for f in frames:
        if bars.see(f):
            break
    if not bars.decided:
        bars.decide()
    return bars


def test_pillarbox_and_letterbox_bars_are_found():
    bars = _decided(_frame(bars=(0, 12), seed=i) for i in range(LOOKAHEAD))
    assert bars.box == (slice(None), slice(13, W - 13)) and bars.seen == LOOKAHEAD
    assert bars.crop(_frame(bars=(0, 12))).shape == (H, W - 26, 3)
    bars = _decided(_frame(bars=(7, 0), seed=i) for i in range(LOOKAHEAD))
    assert bars.box == (slice(8, H - 8), slice(None))


@pytest.mark.parametrize("make", [
    lambda i: _frame(seed=i),  # no bars
    lambda i: np.concatenate([np.zeros((10, W, 3), np.uint8), _frame(seed=i)[10:]]),  # a dark band at the top only: a night sky
    lambda i: _frame(bars=(0, 30), seed=i),  # dark sides over more than half the width: a dark picture, not bars
    lambda i: _frame(bars=(0, 1), seed=i),  # a dark column at each edge: less than a bar
])
def test_no_crop_without_a_pair_of_bars(make):
    bars = _decided(make(i) for i in range(LOOKAHEAD))
    assert bars.decided and not bars.cropping


def test_a_fade_in_from_black_waits_for_the_picture():
    frames = [np.zeros((H, W, 3), np.uint8)] * 80 + [_frame(bars=(0, 12), seed=i) for i in range(10)]
    bars = _decided(frames)
    assert bars.seen == 81 and bars.box == (slice(None), slice(13, W - 13))
    bars = _decided([np.zeros((H, W, 3), np.uint8)] * (MAX_LOOKAHEAD + 5))  # nothing but black: no crop, in bounded memory
    assert bars.seen == MAX_LOOKAHEAD and not bars.cropping


def _through(cropper: Cropper, frames) -> list[tuple[int, np.ndarray]]:
    out = [x for i, f in enumerate(frames) for x in cropper.push(i, f)]
    return out + cropper.flush()


def test_a_flash_keeps_the_crop_and_a_picture_in_the_bars_ends_it():
    pillar = [_frame(bars=(0, 12), seed=i) for i in range(LOOKAHEAD + 10)]
    flash = [np.full((H, W, 3), 250, np.uint8)] * 4  # lights the bars too, for 4 frames
    full = [_frame(seed=i) for i in range(LIT_FRAMES + 10)]  # another source, without bars
    frames = pillar + flash + pillar[:20] + full
    out = _through(Cropper(), frames)
    assert [i for i, _ in out] == list(range(len(frames)))  # every frame, once, in order
    widths = [f.shape[1] for _, f in out]
    first_full = len(pillar) + len(flash) + 20
    assert widths[:first_full] == [W - 26] * first_full  # the flash frames cropped like the rest
    assert widths[first_full:] == [W] * len(full)  # whole from the first frame of the source without bars


def _lit(value: int, seed: int) -> np.ndarray:
    """A frame without bars whose edges (where the bars were) are at ``value`` grey levels."""
    f = _frame(seed=seed)
    f[:, :12], f[:, W - 12:] = value, value
    return f


def test_a_cut_into_a_picture_without_bars_ends_the_crop_at_the_cut():
    """The new picture's edges brighten over the frames after the cut (the turning cockatoo after chaplin.mp4's
    pillarboxed picture, seed 1115): the frames still go out whole from the cut itself, not from the first frame
    as bright as the edges become, so the change of scale falls on the cut and not on the frame after it."""
    pillar = [_frame(bars=(0, 12), seed=i) for i in range(LOOKAHEAD + 10)]
    full = [_lit(min(100 + 4 * i, 150), seed=i) for i in range(LIT_FRAMES + 10)]  # 100 at the cut, 150 from 13 frames on
    out = _through(Cropper(), pillar + full)
    assert [f.shape[1] for _, f in out] == [W - 26] * len(pillar) + [W] * len(full)


def test_a_wipe_into_a_picture_without_bars_is_compared_cropped_to_its_end():
    """A wipe lights the bars a little more each frame: frames go out whole only from where they are as bright as
    they become, so the wipe is compared like the shot before it and the change of scale comes at its end."""
    pillar = [_frame(bars=(0, 12), seed=i) for i in range(LOOKAHEAD + 10)]
    wipe = [_lit(15 * (k + 1), seed=k) for k in range(9)]  # 15, 30 .. 135: no step of half the rise to 150
    full = [_lit(150, seed=i) for i in range(LIT_FRAMES + 10)]
    out = _through(Cropper(), pillar + wipe + full)
    widths = [f.shape[1] for _, f in out]
    assert widths == [W - 26] * (len(pillar) + len(wipe) - 1) + [W] * (len(full) + 1)  # whole from 135 (0.9 x 150) on


def test_lit_frames_count_analysed_frames():
    frames = [_frame(bars=(0, 12), seed=i) for i in range(LOOKAHEAD)] + [_frame(seed=i) for i in range(LIT_FRAMES + 2)]
    frames += [_frame(bars=(0, 12), seed=i) for i in range(10)]
    assert all(f.shape[1] == W - 26 for _, f in _through(Cropper(k=2), frames))  # at 50 fps 27 lit frames are ~half a second


def test_wrappers_hold_frames_until_the_bars_are_known():
    det = WithoutBars(_Recorder())
    for i in range(LOOKAHEAD - 1):
        assert det.process_frame(i, _frame(bars=(0, 12), seed=i)) == [] and det.settled() == 0
    det.process_frame(LOOKAHEAD - 1, _frame(bars=(0, 12)))
    assert det.inner.seen == [(i, (H, W - 26)) for i in range(LOOKAHEAD)] and det.settled() == LOOKAHEAD
    purity = PurityWithoutBars(_Recorder())
    for i in range(10):  # a video shorter than the look-ahead: asking about it lets its frames out
        purity.consume(i, _frame(bars=(0, 12), seed=i))
    assert purity.inner.seen == [] and purity.find(0, 10) == [] and len(purity.inner.seen) == 10


def test_factories_wrap_detector_and_purity_check():
    assert isinstance(build_detector("combined", {"transnet": "never"}, True, 25.0), WithoutBars)
    assert isinstance(build_purity(PurityConfig(), 60.0), PurityWithoutBars)
    assert not isinstance(build_detector("adaptive", {}, True, 25.0), WithoutBars)  # PySceneDetect's, as configured


class _Recorder(ShotDetector):
    """Records what it is fed (index, frame size); finds nothing."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, tuple[int, int]]] = []

    def process_frame(self, index: int, small_bgr: np.ndarray) -> list[Boundary]:
        self.seen.append((index, small_bgr.shape[:2]))
        return []

    def settled(self) -> int:
        return self.seen[-1][0] + 1 if self.seen else 0

    def consume(self, index: int, small_bgr: np.ndarray) -> None:
        self.process_frame(index, small_bgr)

    def find(self, start: int, end: int) -> list:
        return []


@pytest.mark.shared
def test_pillarboxed_composites_split_as_well_as_without_bars(shared_dir, tmp_path):
    """Hard composites re-encoded with 40 px bars left and right split as well as without them, and at no whip pan.

    Without the crop a whip pan is no longer "the same picture shifted" (the bars do not move): on these two
    composites 3 whip pans became transitions and 2 clips held a boundary.
    """
    for comp in build_hard_set(tmp_path, [211, 212], shared_dir / "media/videos", n_transitions=6):
        boxed = tmp_path / f"boxed_{Path(comp.path).name}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(comp.path), "-vf", "scale=240:180,pad=320:180:40:0:black",
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", str(boxed)], check=True)
        plain, cropped = (_quality(comp, detect(p, "combined", {"transnet": "never"})) for p in (comp.path, boxed))
        assert cropped.cut == plain.cut and cropped.at_whip == 0 and cropped.bad_clips <= plain.bad_clips, (plain, cropped)
        assert cropped.gradual[0] >= plain.gradual[0] and cropped.gradual[1] <= plain.gradual[1], (plain, cropped)


@pytest.mark.shared
def test_a_letterboxed_fade_to_black_stays_a_transition(shared_dir):
    """sintel_10s.mp4 (letterboxed): snow fades to black, a title card, a cut to a dark room (frames 63-191). Cropped,
    both sides are of low contrast, and the exposure test once took them for one picture re-exposed."""
    found = detect(shared_dir / "media/videos/sintel_10s.mp4", "combined", {"transnet": "never"}, fps=24.0)
    assert any(b.start <= 75 and b.end >= 185 for b in found), found


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")
@pytest.mark.parametrize("kind", ["pan_left", "zoom_in"])
def test_pillarboxed_footage_moves_as_much_as_without_bars(tmp_path: Path, kind: str):
    """The same picture with bars beside it: the same motion score and camera label (the flow runs on the picture)."""
    from curate import synth
    from curate.config import ClipsConfig
    from curate.stages.analyse import AnalyseStage
    from curate.stages.probe import ProbeStage

    plain, boxed = tmp_path / "plain.mp4", tmp_path / "boxed.mp4"
    synth.make_video(plain, [(75, kind)], size=(240, 176), seed=3)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(plain), "-vf", "pad=320:176:40:0:black", "-c:v", "libx264", "-crf", "18",
                    "-preset", "veryfast", str(boxed)], check=True, stdin=subprocess.DEVNULL)
    stage = AnalyseStage(clips=ClipsConfig(min_s=1.0, max_s=3.0))
    (a,), (b,) = ([c for c in stage.process_video(ProbeStage().process_video({"uri": str(p), "video_id": p.stem}))["clips"]]
                  for p in (plain, boxed))
    assert a["camera_motion"] == b["camera_motion"] == kind
    assert b["motion_score"] == pytest.approx(a["motion_score"], rel=0.1)
