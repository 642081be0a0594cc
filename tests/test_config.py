"""A bad pipeline YAML fails before any work, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.config import ConfigError, load_pipeline
from curate.pipeline import build_stages

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


@pytest.mark.parametrize("path", sorted(PIPELINES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_pipelines_load_and_build(path: Path):
    cfg = load_pipeline(path)
    assert [s.name for s in build_stages(cfg)][:2] == ["probe", "analyse"]


@pytest.mark.parametrize(
    "text, field",
    [
        ("clips:\n  min_s: -1\n", "clips.min_s"),
        ("clips:\n  min_s: 5\n  max_s: 2\n", "clips"),
        ("detector:\n  kind: magic\n", "detector.kind"),
        ("filter:\n  min_motoin: 0.2\n", "filter.min_motoin"),
        ("encode:\n  crf: 99\n", "encode.crf"),
        ("limits:\n  video_timeout_s: zero\n", "limits.video_timeout_s"),
    ],
)
def test_bad_field_is_named(tmp_path: Path, text: str, field: str):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_pipeline(p)
    assert field in str(e.value)


def test_not_yaml_and_missing_file(tmp_path: Path):
    p = tmp_path / "x.yaml"
    p.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(p)
    with pytest.raises(ConfigError, match="not found"):
        load_pipeline(tmp_path / "missing.yaml")


def test_unknown_resource_stage(tmp_path: Path):
    p = tmp_path / "r.yaml"
    p.write_text("resources:\n  analyze:\n    cpus: 1\n")
    with pytest.raises(ConfigError, match="analyze"):
        build_stages(load_pipeline(p))


def test_thresholds_do_not_change_split_settings():
    from curate.config import PipelineConfig

    a = PipelineConfig()
    b = PipelineConfig.model_validate({"filter": {"min_motion": 3.0}})
    c = PipelineConfig.model_validate({"clips": {"trim_frames": 5}})
    assert a.split_settings() == b.split_settings() != c.split_settings()
    assert a.config_hash() != b.config_hash()
