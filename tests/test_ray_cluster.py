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

    gpus = int(sys.argv[4])
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


def _cluster_run_matches_local(tmp_path: Path, videos: int, pipeline_yaml: str, gpus: int = 0) -> str:
    """Run on the two-node cluster (the worker declaring ``gpus``) and locally; the tables must agree. Returns the cluster run's stderr."""
    inputs = tmp_path / "in"
    make_inputs(inputs, videos)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(pipeline_yaml)
    script = tmp_path / "cluster.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(pipeline), str(inputs), str(tmp_path / "ray"), str(gpus)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    local = subprocess.run([sys.executable, "-m", "curate", "run", str(pipeline), "--input", str(inputs), "--output", str(tmp_path / "local"), "--runner", "local"], capture_output=True, text=True, timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]
    for table in ("clips", "rejected"):
        assert_same_rows(read_table(tmp_path / "local", table), read_table(tmp_path / "ray", table))
    return done.stderr


def test_run_on_a_two_node_cluster(tmp_path: Path):
    _cluster_run_matches_local(tmp_path, 3, "clips: {min_s: 1.0, max_s: 3.0}\n")


def test_transnet_analysis_on_a_node_with_a_gpu(tmp_path: Path):
    """TransNetV2 in the pass makes the analysis actors ask for a token GPU share: they run (on the GPU node), and
    give what the local runner gives. The GPU is only declared here, so they see no CUDA and use the CPU."""
    stderr = _cluster_run_matches_local(
        tmp_path, 2, "clips: {min_s: 1.0, max_s: 3.0}\ndetector: {kind: combined, params: {transnet: always}}\n", gpus=1)
    assert "gpus=0.01" in stderr, stderr[-3000:]
