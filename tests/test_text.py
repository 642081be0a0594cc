"""Text-overlay score: PP-OCRv4 detection on the sampled frames orders burnt-in text as people would.

Videos are made here with ``ffmpeg drawtext`` over real shared footage
(``cockatoo.mp4``), or over ffmpeg's ``mandelbrot`` source where ``../shared``
is absent: no text, a small corner word, subtitles at the bottom, a full-frame
slide.
"""

from __future__ import annotations

import shutil
import subprocess
from itertools import islice
from pathlib import Path

import pytest

pytest.importorskip("rapidocr_onnxruntime")

from curate.config import PipelineConfig, TextConfig, load_pipeline
from curate.config_diff import differences
from curate.discover import discover
from curate.inspect import summarize
from curate.models.text_detector import TextDetector
from curate.pipeline import build_stages
from curate.refilter import refilter
from curate.report import render
from curate.run import run_pipeline
from curate.runners.local import run_local
from tests.pipeline_helpers import assert_same_rows, read_table

ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = ROOT.parent / "shared" / "media" / "videos"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian fonts-dejavu-core (make system-deps)
THRESHOLD = 0.02  # filter.max_text_area of the shipped pipelines
VARIANTS = {
    "none": "null",
    "corner": f"drawtext=fontfile={FONT}:text='LOGO':fontsize=h*0.035:fontcolor=white:x=w-tw-16:y=16",
    "subtitle": f"drawtext=fontfile={FONT}:text='I never thought we would see them again':fontsize=h*0.06:"
                "fontcolor=white:borderw=2:x=(w-tw)/2:y=h-th-h*0.06",
    "slide": "drawbox=x=0:y=0:w=iw:h=ih:color=white@0.9:t=fill," + ",".join(
        f"drawtext=fontfile={FONT}:text='{line}':fontsize=h*{size}:fontcolor=black:x=w*0.06:y=h*{y}"
        for line, size, y in [("Quarterly results", 0.09, 0.08), ("- revenue grew in every region", 0.055, 0.25),
                              ("- costs fell by a tenth", 0.055, 0.39), ("- new offices opened in three cities", 0.055, 0.53)]),
}


def _config(**filter_over: object) -> PipelineConfig:
    """Model-free with the text stage; every other check off, so only text decides."""
    off = {k: None for k in ("min_motion", "min_sharpness", "min_brightness", "max_brightness",
                             "max_black_fraction", "max_frozen_fraction")}
    return PipelineConfig.model_validate({
        "limits": {"video_timeout_s": 120}, "clips": {"min_s": 1.0, "max_s": 4.0}, "output": {"shard_size_mb": 0.05},
        "dedup": {"enabled": False}, "text": {}, "filter": {**off, **filter_over},
    })


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One 2.5 s 640x360 video per variant, over real footage where it is available."""
    if not FONT.is_file():
        pytest.skip(f"{FONT} missing (Debian fonts-dejavu-core; make system-deps)")
    root = tmp_path_factory.mktemp("text")
    cockatoo = SHARED_VIDEOS / "cockatoo.mp4"
    source = ["-ss", "2", "-i", str(cockatoo)] if cockatoo.is_file() else ["-f", "lavfi", "-i", "mandelbrot=s=640x360:r=20"]
    out = {}
    for name, vf in VARIANTS.items():
        out[name] = root / f"{name}.mp4"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *source, "-t", "2.5", "-vf", f"scale=640:360,{vf}",
                        "-an", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out[name])], check=True)
    return out


def _scores(paths: list[Path], config: PipelineConfig | None = None) -> dict[str, list[dict]]:
    """Video file stem -> its clips' text columns, from probe + analyse + text in this process."""
    stages = build_stages(config or _config())[:3]
    assert [s.name for s in stages] == ["probe", "analyse", "text"]
    out = {}
    for rec in run_local(stages, list(discover([str(p) for p in paths]))):
        assert rec["status"] == "pending", rec.get("reason")
        out[Path(rec["uri"]).stem] = [{k: c[k] for k in ("text_area_max", "text_area_mean", "text_boxes")} for c in rec["clips"]]
    return out


@pytest.fixture(scope="module")
def scores(videos: dict[str, Path]) -> dict[str, dict]:
    s = _scores(list(videos.values()))
    assert all(len(s[name]) == 1 for name in VARIANTS), s
    return {name: s[name][0] for name in VARIANTS}


def test_score_orders_the_overlays(scores: dict[str, dict]) -> None:
    area = {name: s["text_area_max"] for name, s in scores.items()}
    assert area["slide"] > area["subtitle"] > area["corner"] >= area["none"], area
    assert area["none"] < 0.005 and area["slide"] > 0.1, area
    assert scores["slide"]["text_boxes"] >= 4 and scores["subtitle"]["text_boxes"] >= 1 and scores["none"]["text_boxes"] == 0
    for s in scores.values():
        assert 0.0 <= s["text_area_mean"] <= s["text_area_max"] <= 1.0


def test_the_shipped_threshold_separates_text_from_clean(scores: dict[str, dict]) -> None:
    for name in ("model-free", "default"):
        assert load_pipeline(ROOT / "pipelines" / f"{name}.yaml").filter.max_text_area == THRESHOLD
    text = {n: scores[n]["text_area_max"] for n in ("subtitle", "slide")}
    clean = {n: scores[n]["text_area_max"] for n in ("none", "corner")}
    assert min(text.values()) > THRESHOLD > max(clean.values()), (text, clean)


@pytest.mark.shared
def test_slide_talk_scores_high_and_cockatoo_near_zero(shared_dir: Path, tmp_path: Path) -> None:
    videos = shared_dir / "media" / "videos"
    talk = tmp_path / "slides_talk_20s.mp4"  # the first 20 s (stream copy): two slides, not two minutes of decoding
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(videos / "slides_talk_1080p.mp4"), "-t", "20", "-an",
                    "-c", "copy", str(talk)], check=True)
    s = _scores([talk, videos / "cockatoo.mp4"])
    assert s["slides_talk_20s"] and all(c["text_area_max"] > 0.05 for c in s["slides_talk_20s"]), s
    assert s["cockatoo"] and all(c["text_area_max"] < 0.005 for c in s["cockatoo"]), s


@pytest.fixture(scope="module")
def local_out(videos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("text-run") / "out"
    run_pipeline(_config(), [str(p) for p in videos.values()], str(out), runner="local")
    return out


def test_ray_runner_gives_the_same_scores(videos: dict[str, Path], local_out: Path, tmp_path: Path, ray_session) -> None:
    run_pipeline(_config(), [str(p) for p in videos.values()], str(tmp_path / "ray"), runner="ray")
    local, ray = read_table(local_out, "clips"), read_table(tmp_path / "ray", "clips")
    assert len(local) == len(VARIANTS) and local["text_area_max"].notna().all()
    assert_same_rows(local, ray)


def test_inspect_and_report_show_the_score_with_its_unit(local_out: Path) -> None:
    st = summarize(str(local_out))["scores"]["clips"]["text_area_max"]
    assert st["unit"] == "fraction of frame area" and st["count"] == len(VARIANTS) and st["max"] > 0.1
    html = render(str(local_out))
    assert "text_area_max (fraction of frame area)" in html and "text_area_mean (fraction of frame area)" in html


def test_refilter_by_max_text_area_moves_clips(local_out: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(local_out, out)
    strict = _config(max_text_area=THRESHOLD)
    assert [d.kind for d in differences(_config().model_dump(mode="json"), strict.model_dump(mode="json"))] == ["thresholds"]
    res = refilter(str(out), strict)
    assert res.changed == 2
    rejected = read_table(out, "rejected")
    assert sorted(Path(u).stem for u in rejected["source_uri"]) == ["slide", "subtitle"]
    assert all([r["key"] for r in reasons] == ["max_text_area"] for reasons in rejected["reject_reasons"])
    assert sorted(Path(u).stem for u in read_table(out, "clips")["source_uri"]) == ["corner", "none"]
    back = refilter(str(out), _config())  # and back: the two are encoded again from their sources
    assert back.changed == 2 and len(read_table(out, "clips")) == len(VARIANTS)


def test_config_rules() -> None:
    with pytest.raises(ValueError, match="max_text_area needs the text section"):
        PipelineConfig.model_validate({"filter": {"max_text_area": 0.02}})
    with pytest.raises(ValueError, match="multiple of 32"):
        PipelineConfig.model_validate({"text": {"size": 300}})
    kinds = {d.path: d.kind for d in differences(_config().model_dump(mode="json"),
                                                 _config().model_copy(update={"text": None}).model_dump(mode="json"))}
    assert kinds == {"text": "computed"}  # adding or removing the score needs a re-run, not a refilter
    other = _config().model_copy(update={"text": TextConfig(size=448, batch_frames=4)})
    kinds = {d.path: d.kind for d in differences(_config().model_dump(mode="json"), other.model_dump(mode="json"))}
    assert kinds == {"text.size": "computed", "text.batch_frames": "operational"}


def test_text_frames_are_sampled_at_the_detector_size_and_leave_the_scorers_frames_alone(tmp_path: Path) -> None:
    """The decode pass samples the detector's frames at ``text.size`` from the decoded picture (portrait: its height);
    the scorers' 256 px frames, and the sharpness measured on them, are the same with or without the text section."""
    import numpy as np

    from curate.synth import make_video

    clips: dict[str, list[dict]] = {}
    for name, rotation in {"landscape": None, "portrait": 90}.items():  # portrait: a phone's rotation tag
        path = tmp_path / f"{name}.mp4"
        make_video(path, shots=((60, "moving"),), size=(640, 360), rotation=rotation)
        for label, cfg in (("text", _config()), ("none", _config().model_copy(update={"text": None}))):
            stages = build_stages(cfg)[:2]
            (rec,) = run_local(stages, list(discover([str(path)])))
            clips[f"{name}/{label}"] = rec["clips"]
    size = _config().text.size
    assert {f.shape for c in clips["landscape/text"] for f in c["_text_frames"]} == {(round(size * 360 / 640), size, 3)}
    assert {f.shape for c in clips["portrait/text"] for f in c["_text_frames"]} == {(size, round(size * 360 / 640), 3)}
    for name in ("landscape", "portrait"):
        with_text, without = clips[f"{name}/text"], clips[f"{name}/none"]
        assert "_text_frames" not in without[0] and len(with_text) == len(without) >= 1
        for a, b in zip(with_text, without):
            assert a["sharpness"] == b["sharpness"] and all(np.array_equal(x, y) for x, y in zip(a["_frames"], b["_frames"]))


def test_detector_input_keeps_the_cost_of_portrait_frames() -> None:
    from curate.models.text_detector import input_size

    assert input_size(256, 144, 512) == (512, 288) and input_size(144, 256, 512) == (288, 512)
    assert input_size(256, 256, 512) == (512, 512) and input_size(4000, 10, 512) == (512, 32)


def test_batches_give_the_areas_of_single_frames(videos: dict[str, Path]) -> None:
    """Why ``text.batch_frames`` may change between runs: it only groups the forward passes."""
    import av

    frames = []
    for path in videos.values():
        with av.open(str(path)) as c:
            frames += [f.to_ndarray(format="rgb24", width=256, height=144) for f in islice(c.decode(video=0), 0, 30, 10)]
    frames.append(frames[0][:100, :200].copy())  # a second shape in the same call
    one, batched = TextDetector(batch_frames=1).detect(frames), TextDetector(batch_frames=5).detect(frames)
    assert one == batched and any(t.boxes for t in one)



def test_a_repeated_picture_is_scored_once_and_a_new_word_is_not_a_repeat(videos: dict[str, Path]) -> None:
    """Static content (slides, a talking head) samples one picture many times: it runs once, but a word drawn on the same
    background is a new picture with its own result."""
    import av
    import numpy as np

    from curate.models import text_detector

    def frame(name: str) -> np.ndarray:
        with av.open(str(videos[name])) as c:
            return next(islice(c.decode(video=0), 20, None)).to_ndarray(format="rgb24", width=256, height=144)

    clean, worded = frame("none"), frame("corner")
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 1.5, clean.shape), 0, 255).astype(np.uint8)
    assert text_detector.same_picture(clean, noisy) and not text_detector.same_picture(clean, worded)
    det = TextDetector()
    runs = []
    real = det._batch
    det._batch = lambda frames, size: runs.append(len(frames)) or real(frames, size)  # count forward passes
    out = det.detect([clean, noisy, worded, clean])
    assert sum(runs) == 2, runs  # clean and worded; the noisy copy and the repeat reuse clean's result
    assert out[1] == out[3] == out[0] == TextDetector().detect([noisy])[0]
    assert out[2] == TextDetector().detect([worded])[0]


def test_only_boxes_shaped_like_text_lines_count() -> None:
    """DBNet also marks thick, squarish blobs of text-like texture (a pixelated face, a printed cup, a bookshelf);
    a line of burnt-in text is longer than tall and at most a quarter of the frame tall."""
    import numpy as np

    from curate.models.text_detector import is_line

    def quad(x: float, y: float, w: float, h: float) -> np.ndarray:
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float32)

    assert is_line(quad(40, 250, 400, 30), 288)  # a subtitle
    assert is_line(quad(400, 10, 60, 16), 288)  # a corner word
    assert not is_line(quad(100, 50, 120, 110), 288)  # a squarish blob
    assert not is_line(quad(50, 50, 400, 100), 288)  # elongated but a third of the frame tall


def test_objects_and_faces_are_not_text(shared_dir: Path, tmp_path: Path) -> None:
    """Real footage without overlays whose first clips DBNet marks as one big blob (a cup, a blocky face, a bookshelf)."""
    names = ["cup.mp4", "carphone_distorted.mp4", "test.webm"]
    paths = [shared_dir / "media" / "videos" / n for n in names]
    if not all(p.is_file() for p in paths):
        pytest.skip("shared videos missing")
    for name, clips in _scores(paths).items():
        assert clips and all(c["text_area_max"] < THRESHOLD for c in clips), (name, clips)

def test_review_calibrate_proposes_max_text_area() -> None:
    """Annotators rejecting texty clips move the threshold (review calibrate walks the filter checks)."""
    from curate.review.calibrate import curves
    from curate.review.clips import META, SCORES

    assert {"text_area_max", "text_area_mean", "text_boxes"} <= set(META) and "text_area_max" in SCORES
    cfg = PipelineConfig.model_validate({"text": {}, "filter": {"max_text_area": 0.2}})
    rows = [{"text_area_max": a, "good": a < 0.01, "weight": 1.0} for a in (0.0, 0.005, 0.03, 0.06, 0.15)]
    (c,) = [c for c in curves(rows, cfg, 1.0) if c.threshold == "max_text_area"]
    assert c.column == "text_area_max" and not c.keep_above and c.proposed == 0.005


def test_a_missing_detector_is_named_before_any_input_is_read(videos: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``rapidocr-onnxruntime`` is installed --no-deps, outside pyproject: its absence is one clear error, not a stage crash."""
    from curate.config import ConfigError
    from curate.models import text_detector

    real = text_detector.find_spec
    monkeypatch.setattr(text_detector, "find_spec", lambda name: None if name == "rapidocr_onnxruntime" else real(name))
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="rapidocr-onnxruntime==") as e:
        run_pipeline(_config(), [str(videos["none"])], str(out), runner="local")
    assert "rapidocr_onnxruntime" in str(e.value) and not out.exists()
