"""The default pipeline end to end with tiny models, on both runners.

Captions, scores, embeddings, flagged clips in ``review/`` with their bytes,
run-wide dedup, the report, and the funnel adding up; the Ray runner gives
the same rows as the local one. Each sampled frame goes through CLIP once.

The tiny CLIP's caption similarities sit in a narrow band, so the caption
check's bands are calibrated on a first run with open bands (every caption
passes): one clip below ``reject_below``, about half below ``pass_min``.
Refiltering that first run with the calibrated bands must give the same
rows as running with them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from curate.models.clip import ClipModel
from curate.refilter import refilter
from curate.report import write_report
from curate.run import run_pipeline
from curate.validate import validate
from tests.models_fixtures import tiny_clip  # noqa: F401
from tests.pipeline_helpers import assert_same_rows, make_inputs, read_table
from tests.tiny_pipeline import tiny_default

TABLES = ("clips", "review", "rejected")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    make_inputs(root, 3)
    return root


@pytest.fixture(scope="module")
def open_run(inputs: Path, tmp_path_factory: pytest.TempPathFactory, tiny_clip) -> tuple[Path, object]:  # noqa: F811
    config = tiny_default(tmp_path_factory.mktemp("cfg_open"), tiny_clip, caption_check={"pass_min": -1.0, "reject_below": -1.0})
    out = tmp_path_factory.mktemp("open") / "out"
    run_pipeline(config, [str(inputs)], str(out), runner="local")
    return out, config


@pytest.fixture(scope="module")
def config(open_run, tmp_path_factory: pytest.TempPathFactory, tiny_clip):  # noqa: F811
    sims = sorted(read_table(open_run[0], "clips")["clip_sim_mean"])
    assert len(sims) >= 3, "the inputs must give at least 3 clips that pass the filter"
    k = len(sims) // 2
    bands = {"reject_below": (sims[0] + sims[1]) / 2, "pass_min": (sims[k - 1] + sims[k]) / 2}
    return tiny_default(tmp_path_factory.mktemp("cfg"), tiny_clip, caption_check=bands)


@pytest.fixture(scope="module")
def local_run(inputs: Path, config, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """The local run, counting the frames that go through the CLIP image tower."""
    out = tmp_path_factory.mktemp("local") / "out"
    embedded: list[int] = []
    real = ClipModel.encode_pixels

    def counting(self: ClipModel, pixels: np.ndarray) -> np.ndarray:
        embedded.append(len(pixels))
        return real(self, pixels)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ClipModel, "encode_pixels", counting)
        run_pipeline(config, [str(inputs)], str(out), runner="local")
    return out, embedded


def _all(out: Path) -> pd.DataFrame:
    return pd.concat([read_table(out, t).assign(table=t) for t in TABLES], ignore_index=True)


def test_every_clip_is_captioned_scored_and_embedded(local_run, config) -> None:
    out, embedded = local_run
    assert validate(str(out)) == []
    rows = _all(out)
    assert len(rows) > 0
    assert (rows["caption_source"] == "clip-retrieval").all() and rows["caption"].str.len().gt(10).all()
    assert rows["caption_model"].notna().all() and rows["caption_version"].str.startswith("clip-retrieval").all()
    for col in ("aesthetic_score", "clip_sim_mean", "clip_sim_min"):
        assert rows[col].notna().all(), col
    norms = [float(np.linalg.norm(np.asarray(e, np.float32))) for e in rows["embedding"]]
    assert all(len(e) == 32 for e in rows["embedding"]) and np.allclose(norms, 1.0, atol=2e-3)
    # One CLIP image pass per sampled frame, shared by aesthetic head, captioner, caption check and the stored embedding.
    assert sum(embedded) == len(rows) * config.analysis.sample_frames


def test_flagged_clips_go_to_review_with_bytes(local_run) -> None:
    out, _ = local_run
    review, clips, rejected = (read_table(out, t) for t in ("review", "clips", "rejected"))
    assert len(review) > 0 and len(clips) > 0, "the bands must leave some clips passing and some flagged"
    assert all(len(f) for f in review["flag_reasons"]) and (review["caption_check"] == "flag").any()
    for row in review.itertuples():
        with av.open(io.BytesIO(row.video)) as c:
            assert sum(1 for _ in c.decode(video=0)) == row.num_frames
    assert (clips["caption_check"] == "pass").all()
    assert rejected["reject_reasons"].map(len).gt(0).all()
    check = rejected[rejected["caption_check"] == "reject"]
    assert all(any(r["key"] == "reject_below" for r in rr) for rr in check["reject_reasons"])


def test_manifest_funnel_and_report(local_run) -> None:
    out, _ = local_run
    m = json.loads((out / "manifest.json").read_text())
    c = m["funnel"]["clips"]
    assert c["accepted"] + c["flagged"] + c["rejected"] == c["produced"] == len(_all(out))
    assert m["funnel"]["checks"]["produced = accepted + rejected + flagged"]
    assert m["schema_versions"]["clip"] == 4 and m["schema_versions"]["videos"] == 4
    assert m["schema_params"]["clip"] == {"EMBED_DIM": 32, "EMBED_DTYPE": "float16"}
    assert m["models"]["clip"]["dim"] == 32 and m["random_init"] is False
    assert {"clip_embed", "aesthetic", "caption", "caption_check", "filter", "encode"} <= set(m["timings"])
    page = Path(write_report(str(out))).read_text()
    assert page.count("<svg") >= 10 and "data:image/jpeg;base64," in page and "flagged" in page


def test_ray_runner_gives_the_same_rows(local_run, inputs: Path, config, tmp_path: Path, ray_session) -> None:
    out, _ = local_run
    run_pipeline(config, [str(inputs)], str(tmp_path / "ray"), runner="ray")
    assert validate(str(tmp_path / "ray")) == []
    for table in TABLES:
        a, b = read_table(out, table), read_table(tmp_path / "ray", table)
        # Ray batches frames of several videos per forward pass: embeddings may differ in the last float16 bit.
        for ea, eb in zip(a.pop("embedding"), b.pop("embedding")):
            np.testing.assert_allclose(np.asarray(ea, np.float32), np.asarray(eb, np.float32), atol=2e-3)
        assert_same_rows(a, b, tol=1e-3)


def test_refilter_with_the_bands_gives_the_rows_of_a_run_with_them(open_run, local_run, config, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "refiltered"
    shutil.copytree(open_run[0], out)
    result = refilter(str(out), config)
    assert result.record is not None and result.record["encoded"] == 0  # passing clips already had their bytes
    assert validate(str(out)) == []
    for table in TABLES:
        assert_same_rows(read_table(local_run[0], table).drop(columns=["embedding"]),
                         read_table(out, table).drop(columns=["embedding"]))
