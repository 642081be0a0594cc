"""Captions: hygiene, sidecars and subtitles, clip-retrieval, a transformers captioner, the stage."""

from __future__ import annotations

import json

import pytest
import yaml

from curate.models.captioners import (
    DEFAULT_VOCAB,
    RetrievalCaptioner,
    TransformersCaptioner,
)
from curate.models.clip import shared_clip
from curate.models.hygiene import RepeatTracker, clean_caption, degenerate_reason
from curate.records import reason
from curate.models.settings import CaptionConfig, ClipModelConfig
from curate.models.sidecars import (
    SidecarReader,
    parse_json_sidecar,
    parse_subtitles,
    source_caption,
    span_text,
)
from curate.stages.caption import CaptionStage
from curate.stages.clip_embed import ClipEmbedStage
from tests.models_fixtures import fake_video, tiny_blip, tiny_clip, tiny_qwen2_vl  # noqa: F401

SRT = """1
00:00:00,500 --> 00:00:02,000
<i>A dog runs</i>

2
00:00:02,000 --> 00:00:04,250
across the grass.

3
00:01:00,000 --> 00:01:02,000
Much later.
"""
VTT = """WEBVTT

NOTE written by hand

00:00.000 --> 00:01.500 align:start
A cat sleeps

00:01.500 --> 00:03.000
A cat sleeps
"""


@pytest.fixture(scope="module")
def clip_cfg(tiny_clip) -> ClipModelConfig:  # noqa: F811
    return ClipModelConfig(model=tiny_clip["name"], pretrained=str(tiny_clip["checkpoint"]))


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("The video shows a man riding a bike.", "A man riding a bike."),
        ("  In this video,   a dog  runs on grass ", "A dog runs on grass"),
        ("a picture of a red car", "A red car"),
        ('"This clip depicts that two people talk"', "Two people talk"),
        ("Here is a video of the video shows a cat", "A cat"),
    ],
)
def test_clean_caption(raw, clean):
    assert clean_caption(raw) == clean


def test_degenerate_captions():
    assert degenerate_reason("") == {"key": "caption_empty", "detail": "caption empty"}
    assert "too short" in degenerate_reason("A cat")["detail"]
    assert "too long" in degenerate_reason("word " * 200)["detail"]
    assert "repeats 'the'" in degenerate_reason("the the the the cat sat there")["detail"]
    assert "repeats 'a red car'" in degenerate_reason("a red car a red car a red car")["detail"]
    assert "repetitive" in degenerate_reason(" ".join(["a man walks on a road and"] * 3 + ["then stops"]))["detail"]
    assert degenerate_reason("A man riding a bike down a hill at sunset") is None


def test_repeat_tracker_counts_distinct_videos():
    t = RepeatTracker(max_videos=3)
    assert [t.add("A cat.", v) for v in ("a", "a", "a", "b")] == [None] * 4  # clips of one video may share it
    assert "repeated on 3+ videos" in t.add("a CAT", "c")["detail"]  # case and punctuation do not hide a repeat
    assert t.add("A dog", "d") is None


def test_subtitles_and_json_restricted_to_span():
    cues = parse_subtitles(SRT)
    assert cues[0] == (0.5, 2.0, "A dog runs") and cues[2][0] == 60.0
    assert span_text(cues, 0.0, 3.0) == "A dog runs across the grass."
    assert span_text(cues, 2.0, 3.0) == "across the grass."  # [start, end): the first cue ended at 2.0
    assert span_text(cues, 10.0, 20.0) is None
    vtt = parse_subtitles(VTT)
    assert len(vtt) == 2 and span_text(vtt, 0.0, 3.0) == "A cat sleeps"  # rolling repeats merged
    assert parse_json_sidecar({"caption": "whole"}) == "whole"
    assert parse_json_sidecar([{"start": 0, "end": 1, "text": "x"}]) == [(0.0, 1.0, "x")]
    with pytest.raises(ValueError):
        parse_json_sidecar({"nope": 1})


def test_source_caption_precedence(tmp_path):
    (tmp_path / "a.srt").write_text(SRT)
    (tmp_path / "b.json").write_text(json.dumps({"segments": [{"start": 0, "end": 5, "caption": "timed json"}]}))
    reader = SidecarReader()
    clip = {"start_s": 0.0, "end_s": 2.5}
    a = {"uri": str(tmp_path / "a.mp4")}
    assert source_caption(a, clip, reader) == ("A dog runs across the grass.", "subtitles")
    txt = {"caption": "from txt", "caption_source": "sidecar"}
    assert source_caption({**a, **txt}, {**clip, **txt}, reader)[1] == "subtitles"  # copied down by analyse
    assert source_caption({**a, "caption": "manifest", "caption_source": "manifest"}, clip, reader) == ("manifest", "manifest")
    assert source_caption({**a, "caption": "m"}, {**clip, "caption": "own", "caption_source": "manifest"}, reader)[0] == "own"
    assert source_caption({"uri": str(tmp_path / "b.mp4")}, clip, reader) == ("timed json", "subtitles")
    assert source_caption({"uri": str(tmp_path / "c.mp4"), "caption": "txt", "caption_source": "sidecar"}, clip, reader) == ("txt", "sidecar")
    assert source_caption({"uri": str(tmp_path / "c.mp4")}, clip, reader) is None
    (tmp_path / "d.json").write_text("{not json")
    (tmp_path / "d.vtt").write_text(VTT)
    assert source_caption({"uri": str(tmp_path / "d.mp4")}, clip, reader) == ("A cat sleeps", "subtitles")  # bad json skipped


def test_retrieval_picks_the_matching_entries(tmp_path, clip_cfg):
    vocab = {"prompt": "{}", "order": ["subjects", "actions", "scenes", "styles"], "subjects": ["a dog", "a car", "a violin"],
             "actions": ["running", "parked"], "scenes": ["on a beach", "in a garage"], "styles": ["cinematic shot", "home video"],
             "camera": {"pan_left": "camera pans left"}}
    (tmp_path / "vocab.yaml").write_text(yaml.safe_dump(vocab))
    model = shared_clip(clip_cfg)
    cap = RetrievalCaptioner(model, tmp_path / "vocab.yaml")
    want = ["a car", "parked", "in a garage", "home video"]
    for w in want:  # frames that look exactly like one entry pick that entry
        assert w in cap.compose(model.encode_texts([w]))
    fe = model.encode_texts(want[:1])
    assert cap.compose(fe, "pan_left").endswith(", camera pans left")
    assert cap.version.startswith("clip-retrieval vocab vocab.yaml@") and cap.model == model.name
    assert RetrievalCaptioner(model).compose(fe[:1], "static").endswith("static camera")  # shipped vocabulary
    assert yaml.safe_load(DEFAULT_VOCAB.read_text())["order"] == ["subjects", "actions", "scenes", "styles", "lighting"]


def test_transformers_captioner_tiny_blip(tiny_blip):  # noqa: F811
    cfg = CaptionConfig(kind="transformers", model=str(tiny_blip), prompt="a picture of", max_new_tokens=6, batch_size=2)
    cap = TransformersCaptioner(cfg)
    clips = [fake_video("v", 3, 3)["clips"][i] for i in range(3)] + [{"_frames": []}]
    texts = cap.caption(clips)
    assert len(texts) == 4 and texts[3] is None
    assert all(isinstance(t, str) and not t.lower().startswith("a picture of") for t in texts[:3])
    assert cap.version.startswith("transformers ") and cap.model == str(tiny_blip) and cap.prompt == "a picture of"
    unprompted = TransformersCaptioner(CaptionConfig(kind="transformers", model=str(tiny_blip), max_new_tokens=4)).caption(clips[:1])
    assert isinstance(unprompted[0], str)


def test_transformers_captioner_video_chat_model(tiny_qwen2_vl):  # noqa: F811
    cfg = CaptionConfig(kind="transformers", model=str(tiny_qwen2_vl), prompt="Describe the video.", num_frames=4, max_new_tokens=5)
    cap = TransformersCaptioner(cfg)
    assert cap.video and cap.chat  # frames go in as one video, the prompt in a chat turn
    clips = [fake_video("v", 2, 5, size=(56, 84))["clips"][i] for i in range(2)]
    texts = cap.caption(clips)
    assert len(texts) == 2 and all(isinstance(t, str) and "Describe" not in t for t in texts)
    one = TransformersCaptioner(cfg.model_copy(update={"num_frames": 1}))
    assert not one.video and isinstance(one.caption(clips[:1])[0], str)  # image path: the middle frame


class _Fixed:
    """A captioner that always says the same thing, as a failing API does."""

    kind, model, prompt, version = "transformers", "fake/model", "Describe.", "fake 1"

    def caption(self, clips):
        return ["The video shows a cat sitting on a red sofa" if c.get("_frames") else None for c in clips]


def test_caption_stage_provenance_hygiene_and_repeats():
    stage = CaptionStage(caption=CaptionConfig(kind="transformers", model="fake/model", max_same_caption_videos=2))
    stage.setup = lambda: None  # no model load; the generator is injected
    stage._gen, stage._reader, stage._repeats = _Fixed(), SidecarReader(), RepeatTracker(2)
    videos = [fake_video("v0", 2, 1, caption="Manifest caption here", caption_source="manifest"), fake_video("v1", 1, 1), fake_video("v2", 2, 1)]
    videos[2]["clips"][1]["reject_reasons"] = [reason("min_brightness", "too dark")]
    out = stage.process(videos)
    kept = out[0]["clips"][0]
    assert kept["caption"] == "Manifest caption here" and kept["caption_source"] == "manifest" and kept["caption_model"] is None
    gen = out[1]["clips"][0]
    assert gen["caption"] == "A cat sitting on a red sofa" and gen["caption_source"] == "transformers"
    assert (gen["caption_model"], gen["caption_prompt"], gen["caption_version"]) == ("fake/model", "Describe.", "fake 1")
    assert not gen.get("flag_reasons")
    assert "repeated on 2+ videos" in out[2]["clips"][0]["flag_reasons"][0]["detail"]
    assert out[2]["clips"][1]["caption"] is None  # rejected clips are not captioned


def test_caption_stage_clip_retrieval_end_to_end(clip_cfg):
    embed = ClipEmbedStage(clip=clip_cfg)
    embed.setup()
    stage = CaptionStage(caption=CaptionConfig(kind="clip-retrieval", keep_existing=False, min_words=2), clip=clip_cfg)
    stage.setup()
    out = stage.process(embed.process([fake_video("v", 2, 3, caption="ignored", caption_source="manifest")]))
    for c in out[0]["clips"]:
        assert c["caption"].endswith("camera pans left") and c["caption_source"] == "clip-retrieval"
        assert c["caption_prompt"] == "a video frame of {}" and c["caption_version"].startswith("clip-retrieval")
