"""The detector's simplified graph computes what the shipped one does, with fewer elementwise passes."""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import pytest

pytest.importorskip("rapidocr_onnxruntime")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from curate.models.text_detector import model_path  # noqa: E402
from curate.models.text_graph import simplified  # noqa: E402


def _session(model: str | bytes) -> "ort.InferenceSession":
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _input() -> np.ndarray:
    """Two normalised 224x384 frames: noise, and a caption over a gradient (text gives the map real peaks)."""
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (224, 384, 3), dtype=np.uint8)
    caption = np.tile(np.linspace(20, 200, 384, dtype=np.uint8)[None, :, None], (224, 1, 3))
    cv2.putText(caption, "words on the frame", (20, 190), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    x = np.stack([noise, caption]).astype(np.float32)
    return np.ascontiguousarray(((x - 127.5) / 127.5).transpose(0, 3, 1, 2))


def test_simplified_graph_gives_the_same_probabilities() -> None:
    x = _input()
    name = _session(str(model_path())).get_inputs()[0].name
    shipped = _session(str(model_path())).run(None, {name: x})[0]
    ours = _session(simplified(model_path())).run(None, {name: x})[0]
    assert shipped.shape == ours.shape == (2, 1, 224, 384)
    assert shipped[1].max() > 0.9  # the caption is found: the comparison covers high probabilities too
    np.testing.assert_allclose(ours, shipped, atol=1e-4)  # float rounding of the folds


def test_simplified_graph_folds_affine_blocks_and_hardswish() -> None:
    before = Counter(n.op_type for n in onnx.load(str(model_path())).graph.node if n.op_type != "Constant")
    after = Counter(n.op_type for n in onnx.load_from_string(simplified(model_path())).graph.node)
    assert after["Conv"] == before["Conv"]
    assert after["Clip"] == after["Div"] == 0 and after["HardSwish"] == before["Clip"]
    elementwise = ("Add", "Mul", "Clip", "Div")
    assert sum(after[k] for k in elementwise) < 0.3 * sum(before[k] for k in elementwise)
