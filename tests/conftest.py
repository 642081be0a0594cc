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


@pytest.fixture(scope="session")
def review_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OUTPUT with flagged, accepted and rejected clips, built once for the review tests (do not modify)."""
    from tests.review_helpers import make_output

    return make_output(tmp_path_factory.mktemp("review"))


@pytest.fixture
def review_out(review_master: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`review_master` without a decisions database."""
    import shutil

    copy = tmp_path / "out"
    shutil.copytree(review_master, copy, ignore=shutil.ignore_patterns("_review"))
    return copy


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory):
    """A real PostgreSQL server (initdb + pg_ctl, as a non-root user); skips when the binaries are absent."""
    from tests.postgres import start_postgres

    server = start_postgres(tmp_path_factory.mktemp("pg"))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty decisions database: SQLite file, or a new database on the PostgreSQL test server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'decisions.sqlite'}"
    return request.getfixturevalue("postgres_server").new_database()
