"""A bad pipeline YAML fails before any work, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from curate.config import ConfigError, PipelineConfig, load_pipeline
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


HOSTILE = [
    ("detector:\n  params: {bogus_param: 3}\n", "bogus_param"),
    ("detector:\n  kind: content\n  params: {threshold: banana}\n", "detector.params.threshold"),
    ("detector:\n  kind: transnetv2\n  params: {nope: 1}\n", "nope"),
    ("encode:\n  preset: warpspeed\n", "encode.preset"),
    ("limits:\n  video_timeout_s: .inf\n", "limits.video_timeout_s"),
    ("filter:\n  min_motion: .nan\n", "filter.min_motion"),
    ("", "empty"),
    ("filter: {min_motion: 0.1}\nfilter: {min_motion: 0.2}\n", "duplicate key 'filter'"),
    ("filter:\n  min_motion: 0.1\n  min_motion: 0.3\n", "duplicate key 'min_motion'"),
    ("filter:\n  min_brightness: 0.9\n  max_brightness: 0.1\n", "filter.min_brightness"),
    ("filter:\n  min_motion: 2\n  max_motion: 1\n", "filter.min_motion"),
    ("filter:\n  min_motion: -0.5\n", "filter.min_motion"),
    ("filter:\n  max_black_fraction: 1.5\n", "filter.max_black_fraction"),
]


@pytest.mark.parametrize("text, field", HOSTILE, ids=[f for _, f in HOSTILE])
def test_hostile_configs_fail_at_load_naming_the_field(tmp_path: Path, text: str, field: str):
    test_bad_field_is_named(tmp_path, text, field)


def test_config_errors_exit_2_before_anything_is_written(tmp_path: Path):
    import subprocess
    import sys

    (tmp_path / "in").mkdir()
    for i, (text, field) in enumerate(HOSTILE[:5]):
        p = tmp_path / f"bad{i}.yaml"
        p.write_text(text)
        out = tmp_path / f"out{i}"
        r = subprocess.run([sys.executable, "-m", "curate", "run", str(p), "-i", str(tmp_path / "in"), "-o", str(out)],
                           capture_output=True, text=True, timeout=120, cwd=PIPELINES.parent, stdin=subprocess.DEVNULL)
        assert r.returncode == 2 and field in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not out.exists()


@pytest.mark.parametrize("path", sorted(PIPELINES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_pipelines_build_their_shot_detector(path: Path):
    """check_detector_params cannot build every kind at load (TransNetV2 loads weights): build it here."""
    from curate.analysis.detectors import build_detector

    d = load_pipeline(path).detector
    assert build_detector(d.kind, dict(d.params), d.fades, 25.0) is not None


def test_transnet_device_is_not_part_of_clip_ids():
    """``detector.device`` moves TransNetV2 (same probabilities to 1e-3, bench/bench_split_gpu.py), not the clips;
    it is refused inside ``params``, where it would change every clip id."""
    cpu, gpu = (PipelineConfig.model_validate({"detector": {"kind": "combined", "device": d}}) for d in ("cpu", "cuda:1"))
    assert cpu.split_settings() == gpu.split_settings()
    with pytest.raises(ValidationError, match="set detector.device instead"):
        PipelineConfig.model_validate({"detector": {"kind": "combined", "params": {"device": "cuda"}}})
    with pytest.raises(ValidationError, match="device"):
        PipelineConfig.model_validate({"detector": {"kind": "combined", "device": "gpu"}})


def test_analysis_asks_for_a_gpu_share_only_where_transnet_runs_on_one():
    def share(detector: dict) -> float:
        return next(s for s in build_stages(PipelineConfig.model_validate({"detector": detector})) if s.name == "analyse").gpus

    assert share({"kind": "combined"}) == share({"kind": "transnetv2"}) == 0.01
    assert share({"kind": "combined", "device": "cpu"}) == share({"kind": "combined", "params": {"transnet": "never"}}) == 0.0
    assert share({"kind": "adaptive"}) == 0.0


def test_the_transnet_device_is_operational():
    """A GPU machine may add to an OUTPUT a CPU machine started, and an OUTPUT written before the setting existed
    accepts runs with it."""
    from curate.config_diff import check_run_fits

    old = PipelineConfig.model_validate({"detector": {"kind": "combined", "device": "cpu"}}).model_dump(mode="json")
    check_run_fits("out", old, PipelineConfig.model_validate({"detector": {"kind": "combined", "device": "cuda"}}).model_dump(mode="json"))
    old["detector"].pop("device")
    check_run_fits("out", old, PipelineConfig.model_validate({"detector": {"kind": "combined"}}).model_dump(mode="json"))
    with pytest.raises(ConfigError, match="detector.kind"):
        check_run_fits("out", old, PipelineConfig().model_dump(mode="json"))
