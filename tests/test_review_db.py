"""The decisions database's versioned migrations, and the rule that human verdicts outrank later passes."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from curate.review import db
from curate.review.outrank import keep_human, recorded


def test_migrations_apply_once_and_are_recorded(tmp_path: Path) -> None:
    engine = db.engine_for(f"sqlite:///{tmp_path / 'd.sqlite'}")
    assert db.migrate(engine) == 0
    assert db.migrate(engine) == db.SCHEMA_VERSION  # nothing left to do
    with engine.connect() as conn:
        assert list(conn.execute(select(db.schema_table.c.version)).scalars()) == [v for v, _ in db.MIGRATIONS]
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    assert {"items", "leases", "decisions"} <= db.tables_present(engine)


def test_later_review_versions_win_and_human_clips_keep_their_decision(tmp_path: Path) -> None:
    import json

    from curate.output.shards import Location

    doc = {"versions": [{"kind": "review", "human": {"a": "approve", "b": "reject"}}, {"kind": "refilter"},
                        {"kind": "review", "human": {"a": "reject"}}]}
    assert recorded(doc) == {"a": "reject", "b": "reject"}
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    changes = {"a": {"reject_reasons": []}, "c": {"reject_reasons": ["x"]}}
    assert keep_human(changes, Location.of(str(tmp_path))) == {"c": {"reject_reasons": ["x"]}}
