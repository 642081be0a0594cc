"""Shot detection at a steady analysed rate (curate.analysis.steady_rate): 50 and 60 fps video is analysed as ~25 fps.

The combined detector counts in frames set at 25 fps; these tests check the
mapping between analysed and real frames, and the detector on real footage
shot (re-timed) at 30 and 50 fps.
"""

from __future__ import annotations

import numpy as np
import pytest

from curate.analysis.combined import CombinedShotDetector
from curate.analysis.detectors import build_detector
from curate.analysis.shots import Boundary, ShotDetector
from curate.analysis.purity import Finding, PurityCheck
from curate.analysis.steady_rate import EveryKth, PurityEveryKth, purity_at_steady_rate, step_for
from curate.synth_transitions import Segment, concat_with_transitions, retimed
from curate.config import DetectorConfig, PipelineConfig
from tests.test_analyse import analyse, assert_clean
from tests.test_shots import detect


class Scripted(ShotDetector):
    """Reports given boundaries (in analysed frames) when it sees given analysed frames; keeps what it was fed."""

    def __init__(self, at: dict[int, list[Boundary]], last: list[Boundary]):
        self.at, self.last, self.seen, self.dropped = at, last, [], []

    def process_frame(self, index, small_bgr):
        self.seen.append((index, int(small_bgr[0, 0, 0])))
        found = self.at.get(index, [])
        self.dropped += [("flash", b) for b in found if not b.is_cut]
        return found

    def post_process(self, last_index):
        return self.last

    def settled(self):
        return len(self.seen) - 3


def _frames(values: list[int]) -> list[np.ndarray]:
    return [np.full((27, 48, 3), v, np.uint8) for v in values]


def test_step_for_rates():
    assert [step_for(f) for f in (0, 10, 24, 25, 29.97, 30, 37.4, 48, 50, 59.94, 60, 120, 240, 90000)] == [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 5, 10, 1]


def test_only_fast_video_is_wrapped():
    assert isinstance(build_detector("combined", {"transnet": "never"}, True, 30.0).inner, CombinedShotDetector)  # inside WithoutBars
    det = build_detector("combined", {"transnet": "never"}, True, 50.0).inner
    assert isinstance(det, EveryKth) and det.k == 2 and isinstance(det.inner, CombinedShotDetector)


def test_every_kth_feeds_analysed_frames_and_maps_back():
    # frame values: the picture changes into frame 9 (a cut between analysed frames 4 = frame 8 and 5 = frame 10)
    frames = _frames([0] * 9 + [200] * 11)
    inner = Scripted({5: [Boundary(5, 5)], 7: [Boundary(6, 7)]}, [Boundary(8, 10)])
    det, found = EveryKth(inner, 2), []
    for i, f in enumerate(frames):
        found += det.process_frame(i, f)
        assert det.settled() <= i + 1
    found += det.post_process(len(frames) - 1)
    assert [i for i, _ in inner.seen] == list(range(10))  # frames 0, 2, ..., 18 as 0 .. 9
    assert [v for _, v in inner.seen] == [0] * 5 + [200] * 5
    # the cut on the frame that changed; a span over every frame it may cover, within the video
    assert found == [Boundary(9, 9), Boundary(11, 14), Boundary(15, 20)]
    assert det.dropped == [("flash", Boundary(11, 14))] and det.dropped is det.dropped  # mapped once, kept
    assert det.settled() == (inner.settled() - 1) * 2 + 1


class ScriptedPurity:
    """Finds given transitions (analysed frames); records what it was fed and asked."""

    def __init__(self, found: list[Finding]):
        self.found, self.fed, self.asked, self.dropped_before = found, [], [], None

    def consume(self, index, small_bgr):
        self.fed.append(index)

    def drop_before(self, index):
        self.dropped_before = index

    def find(self, start, end):
        self.asked.append((start, end))
        return [f for f in self.found if start <= f.boundary.start < end]


def test_purity_every_kth_answers_in_the_videos_frames():
    inner = ScriptedPurity([Finding(Boundary(12, 12), 30.0, 3.0), Finding(Boundary(20, 26), 9.0, 2.0, edge=True)])
    check = PurityEveryKth(inner, 2)
    for i, f in enumerate(_frames([0] * 61)):
        check.consume(i, f)
    assert inner.fed == list(range(31))
    found = check.find(9, 59)  # analysed frames 5 .. 29
    assert inner.asked == [(5, 30)]
    # a cut is cut out with the whole interval it lies in; a span over every frame it may cover
    assert [f.boundary for f in found] == [Boundary(23, 24), Boundary(39, 52)] and found[1].edge and found[0].change == 30.0
    check.drop_before(41)
    assert inner.dropped_before == 20
    assert purity_at_steady_rate(inner, 25.0) is inner and isinstance(purity_at_steady_rate(PurityCheck(), 60.0), PurityEveryKth)


@pytest.mark.shared
@pytest.mark.parametrize("fps", [50, 60])
def test_combined_at_50_and_60_fps(shared_dir, tmp_path, fps):
    """A jump cut on a locked-off camera and a dissolve, filmed at 50/60 fps: found where they are, and nothing else.

    Analysed frame by frame, 25 fps sources shown at 50 fps repeat every frame
    and motion per frame halves; the detector put false cuts in vtest.avi and
    chaplin.mp4 here before it analysed such video at ~25 fps.
    """
    segs, trs = retimed([Segment("vtest.avi", 4.0, 70), Segment("vtest.avi", 30.0, 70), Segment("chaplin.mp4", 1.0, 70),
                         Segment("box.mp4", 2.0, 60)], [None, ("dissolve", 8), ("wipeleft", 12)], fps)
    comp = concat_with_transitions(tmp_path / "c.mp4", segs, trs, shared_dir / "media/videos", fps=fps)
    found = detect(comp.path, "combined", {"transnet": "never"}, fps=float(fps))
    (jump,), spans = comp.cuts, comp.spans
    assert [b for b in found if b.is_cut] == [Boundary(jump, jump)], found
    gradual = [b for b in found if not b.is_cut]
    assert len(gradual) == len(spans) and all(b.start <= s and e < b.end for b, (s, e) in zip(gradual, spans)), (found, spans)
    # the analysis stage: the same shot list, in the video's frames, and clips clear of every transition
    out = analyse(comp.path, PipelineConfig(detector=DetectorConfig(kind="combined", params={"transnet": "never"})))
    assert out["decoded"]["fps"] == pytest.approx(fps) and out["clips"]
    assert [(t["start_frame"], t["kind"]) for t in out["transitions"] if t["kind"] == "cut"] == [(jump, "cut")]
    assert_clean(out["clips"], comp.cuts, spans)


@pytest.mark.shared
def test_ten_fps_camera_at_30_fps_is_no_stream_of_cuts(shared_dir, tmp_path):
    """vtest.avi (10 fps) shown at 30 fps changes every third frame: each change is motion, not a cut."""
    comp = concat_with_transitions(tmp_path / "c.mp4", [Segment("vtest.avi", 20.0, 150), Segment("chaplin.mp4", 1.0, 60)], [None],
                                   shared_dir / "media/videos", fps=30)
    assert detect(comp.path, "combined", {"transnet": "never"}, fps=30.0) == [Boundary(150, 150)]
