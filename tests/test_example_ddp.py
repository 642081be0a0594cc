"""examples/train_ddp.py under torchrun on CPU (gloo): 2 ranks train and checkpoint, 1 rank resumes.

The resumed run (another world size) must finish epoch 0 with exactly the
clips the 2-rank run had not consumed when it saved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.test_data_dataset import clip_row, encode, write_output

ROOT = Path(__file__).resolve().parents[1]
NUM_CLIPS = 20  # batch 2 -> 5 batches per rank on 2 ranks


def torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(ROOT / "examples" / "train_ddp.py"), *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def steps(log: Path, rank: int) -> list[dict]:
    path = log.with_suffix(f".rank{rank}.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_train_ddp_example_runs_and_resumes_on_another_world_size(tmp_path):
    video = encode(8, 48, 32, 8.0)
    out = write_output(tmp_path / "out", [clip_row(i, video, 8, 48, 32, 8.0) for i in range(NUM_CLIPS)], 10, 4)
    ckpt, log = tmp_path / "ckpt.pt", tmp_path / "ids"

    first = torchrun(2, str(out), "--steps", "3", "--save-every", "2", "--workers", "1", "--checkpoint", str(ckpt), "--record", str(log))
    assert first.returncode == 0, first.stderr[-3000:]
    ranks = [steps(log, r) for r in range(2)]
    assert [len(s) for s in ranks] == [3, 3]
    consumed = [i for s in ranks for st in s[:2] for i in st["ids"]]  # the checkpoint holds steps 1-2
    assert len(consumed) == len(set(consumed)) == 8  # ranks never share a clip

    (tmp_path / "ids.rank0.jsonl").unlink()
    again = torchrun(1, str(out), "--steps", "10", "--workers", "2", "--checkpoint", str(ckpt), "--record", str(log))
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = steps(log, 0)  # steps 3-10: the 12 clips left of epoch 0 in 6 batches, then epoch 1
    rest = [i for st in resumed if st["epoch"] == 0 for i in st["ids"]]
    assert Counter(consumed + rest) == Counter(f"c{i:05d}" for i in range(NUM_CLIPS))
    assert [st["epoch"] for st in resumed] == [0] * 6 + [1] * 2
