"""The decisions database: SQLAlchemy 2 tables, a versioned migration scheme, durable engines.

Embedded SQLite by default (``OUTPUT/_review/decisions.sqlite``, WAL journal,
``synchronous=FULL``, every transaction ``BEGIN IMMEDIATE`` so concurrent
writers queue instead of failing), or any SQLAlchemy URL (PostgreSQL for teams).
A decision is committed before the server answers, so an acknowledged
decision survives ``kill -9`` of the server.

``decisions`` is append-only: an undo is a new row naming the row it undoes.
``items`` is the queue (which clips are to be reviewed and by how many people),
``leases`` who is looking at which clip until when.

Migrations: ``review_schema`` records every applied version; :data:`MIGRATIONS`
lists them in order and :func:`migrate` applies the missing ones, each in its
own transaction (a new version appends a function; tables are never dropped by hand).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    inspect,
    select,
)

DB_DIR = "_review"
DB_FILE = "decisions.sqlite"
DECISIONS = ("approve", "reject", "skip", "undo")

metadata = MetaData()

schema_table = Table(
    "review_schema", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", Float, nullable=False),
)

items = Table(
    "items", metadata,
    Column("clip_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # flagged | qa_accepted | qa_rejected
    Column("video_id", String(64), nullable=False),
    Column("source_uri", Text, nullable=False),
    Column("needed", Integer, nullable=False),  # 1, or 2 for a double review
    Column("rate", Float, nullable=False),  # the share of its table drawn (1 for flagged): weights for calibrate
    Column("order_key", String(32), nullable=False),
    Column("flag_reasons", Text, nullable=False),  # reason keys, space separated, for the reason filter
    Column("added_at", Float, nullable=False),
    Index("ix_items_order", "order_key"),
)

leases = Table(
    "leases", metadata,
    Column("clip_id", String(64), ForeignKey("items.clip_id"), primary_key=True),  # one holder at a time
    Column("annotator", String(64), nullable=False, index=True),
    Column("token", String(32), nullable=False),
    Column("expires_at", Float, nullable=False),
)

decisions = Table(
    "decisions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("clip_id", String(64), nullable=False, index=True),
    Column("annotator", String(64), nullable=False, index=True),
    Column("decided_at", Float, nullable=False),
    Column("decision", String(8), nullable=False),  # approve | reject | skip | undo
    Column("reason", Text),
    Column("old_caption", Text),
    Column("new_caption", Text),  # null: caption not edited
    Column("shard_version", Integer),  # the manifest version the annotator was shown
    Column("undoes", Integer),  # for an undo: the id of the decision it takes back
    Column("origin", String(16), nullable=False, default="web"),  # web | import | labelstudio
)


def _v1(conn: Connection) -> None:
    for t in (items, leases, decisions):
        t.create(conn, checkfirst=True)


def _v2(conn: Connection) -> None:
    """Indexes the queue's per-clip lookups use (who decided a clip, which decision an undo takes back)."""
    for name, table, cols in (("ix_decisions_clip_annotator", "decisions", "clip_id, annotator"),
                              ("ix_decisions_undoes", "decisions", "undoes"), ("ix_leases_expires", "leases", "expires_at")):
        conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({cols})")


# version -> migration; append new versions, never edit an applied one.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [(1, _v1), (2, _v2)]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def default_url(output: str) -> str:
    d = Path(output) / DB_DIR
    d.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{d / DB_FILE}"


def engine_for(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, ``synchronous=FULL`` and immediate transactions."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, pool_size=8, max_overflow=8)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001 - DBAPI objects
            dbapi_conn.isolation_level = None  # SQLAlchemy's begin event below decides how transactions start
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # noqa: ANN001
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_size=16, max_overflow=16, pool_pre_ping=True)


def migrate(engine: Engine) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; returns the version it had before (0: new).

    One transaction, serialised between processes (``BEGIN IMMEDIATE`` on SQLite, an
    advisory lock on PostgreSQL), so servers starting together migrate once.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7420011)")
        schema_table.create(conn, checkfirst=True)
        have = set(conn.execute(select(schema_table.c.version)).scalars())
        for version, step in MIGRATIONS:
            if version not in have:
                step(conn)
                conn.execute(insert(schema_table).values(version=version, applied_at=time.time()))
    return max(have, default=0)


def open_db(url: str) -> Engine:
    engine = engine_for(url)
    migrate(engine)
    return engine


def tables_present(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())
