"""The Ray runner joins an existing multi-node cluster (two 1-CPU nodes) via --ray-address."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.pipeline_helpers import assert_same_rows, make_inputs, read_table

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import subprocess, sys
    from ray.cluster_utils import Cluster

    gpus = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1, num_gpus=gpus)
    cluster.wait_for_nodes()
    try:
        cmd = [sys.executable, "-m", "curate", "run", sys.argv[1], "--input", sys.argv[2],
               "--output", sys.argv[3], "--ray-address", cluster.address]
        sys.exit(subprocess.run(cmd).returncode)
    finally:
        cluster.shutdown()
    """
)


def test_run_on_a_two_node_cluster(tmp_path: Path):
    inputs = tmp_path / "in"
    make_inputs(inputs, 3)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("clips: {min_s: 1.0, max_s: 3.0}\n")
    script = tmp_path / "cluster.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(pipeline), str(inputs), str(tmp_path / "ray")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    local = subprocess.run([sys.executable, "-m", "curate", "run", str(pipeline), "--input", str(inputs), "--output", str(tmp_path / "local"), "--runner", "local"], capture_output=True, text=True, timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]
    for table in ("clips", "rejected"):
        assert_same_rows(read_table(tmp_path / "local", table), read_table(tmp_path / "ray", table))


def test_transnet_analysis_on_a_node_with_a_gpu(tmp_path: Path):
    """TransNetV2 in the pass makes the analysis actors ask for a token GPU share: they run (on the GPU node), and
    give what the local runner gives. The GPU is only declared here, so they see no CUDA and use the CPU."""
    inputs = tmp_path / "in"
    make_inputs(inputs, 2)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("clips: {min_s: 1.0, max_s: 3.0}\ndetector: {kind: combined, params: {transnet: always}}\n")
    script = tmp_path / "cluster.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(pipeline), str(inputs), str(tmp_path / "ray"), "1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'gpus': 0.01" in done.stderr or "gpus=0.01" in done.stderr, done.stderr[-3000:]
    local = subprocess.run([sys.executable, "-m", "curate", "run", str(pipeline), "--input", str(inputs), "--output", str(tmp_path / "local"), "--runner", "local"], capture_output=True, text=True, timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]
    for table in ("clips", "rejected"):
        assert_same_rows(read_table(tmp_path / "local", table), read_table(tmp_path / "ray", table))
