"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` next to the repo (real media and weights); skips when absent."""
    d = Path(__file__).resolve().parents[1].parent / "shared"
    if not d.is_dir():
        pytest.skip("../shared not present")
    return d


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray for every test that needs it (``ray.init`` costs seconds)."""
    ray = pytest.importorskip("ray")
    from curate.runners.ray import init_ray

    init_ray(None)
    yield ray
    ray.shutdown()
