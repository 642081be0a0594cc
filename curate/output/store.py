"""The output store: what the driver hands finished video records to.

Commit protocol (resume depends on it)
--------------------------------------
Records are buffered per video and committed together once the buffered
video bytes + thumbnails reach ``output.shard_size_mb`` (or the buffer holds
``rows.MAX_BUFFER_VIDEOS`` videos or is ``rows.MAX_BUFFER_AGE_S`` old, so runs
of failures or reference-mode clips still commit, in bounded memory). A commit has a part id ``part-{seq:06d}-{tag}``: ``seq`` continues
from the highest committed part, ``tag`` hashes the run id, so names never
repeat across runs. It holds every clip row, rejected row and ledger row of
its videos; all rows of a video are in one commit.

1. Every file of the commit is written under a hidden temp name
   (``clips/.part-….parquet.tmp``) and fsynced; readers' ``*.parquet`` globs
   and pyarrow's dataset discovery skip it.
2. Data files are renamed to their final names; their directories fsynced.
3. The ledger part ``_ledger/part-….parquet`` is renamed LAST. This rename
   is the commit point: a data file counts only if its ledger part exists.
4. ``manifest.json`` is rewritten (temp + rename) listing committed shards.

On object stores (``s3://``, ``memory://``…) there is no atomic rename: the
final names are written directly, data first and the ledger part last, and
readers should go through the manifest, which is written after the ledger.

Data files may also be written by workers (:mod:`curate.output.writer`, the
Ray runner's shard writers) under staged names; :meth:`OutputStore.commit_staged`
then does steps 2–4 with them (moved to part names, ledger part last), so
the commit point stays here. Staged files no commit took are temp files:
removed at close, or by recovery after a crash.

On open, under the lock (:mod:`curate.output.lock`), recovery deletes temp
files and every data file whose ledger part does not exist (an interrupted
commit), then loads the ledger: ``done``/``rejected`` videos are skipped,
``failed`` ones retried; the latest row per video wins. A crash at any moment
therefore loses at most the uncommitted buffer and never duplicates a clip.
Clips of ``failed`` records are never written (they are redone on retry).
At close, ``videos.parquet`` (latest ledger row per video) and the manifest
are rewritten. Between a crash and the next open, a plain glob of ``clips/``
may still see an orphan of the interrupted commit; the manifest never does.

Clip rows go to ``clips/`` (accepted), ``review/`` (flagged for a person, with
bytes) or ``rejected/``. Run-wide passes that change decisions after the
fact (dedup, refilter; see :mod:`curate.output.rewrite`) commit through
:meth:`OutputStore.commit_rewrite`: new data files replace whole committed
files, and the replacement commits at the same ledger rename.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from curate.config import ConfigError, PipelineConfig
from curate.config_diff import check_run_fits
from curate.output import funnel as fn
from curate.output import manifest as mf
from curate.output.ledger import Ledger, latest, read_parts
from curate.output.lock import Lock, acquire
from curate.output.pieces import Pieces, Staged, joined_sets, own_piece
from curate.output.rows import PARAM_SCHEMAS, Outcome, RowBuffer, RowMaker, checked, outcome, table_of
from curate.output.shards import (
    DERIVED,
    LEDGER_DIR,
    TABLES,
    Location,
    commit_files,
    part_name,
    publish,
    recover,
    remove_staged,
    sidecar_name,
    write_tables,
)
from curate.output.writer import STAGED_PREFIX, stage_piece
from curate.records import DONE, REJECTED, is_piece
from curate.schema import load_schema, schema_versions, to_table

__all__ = ["PARAM_SCHEMAS", "OutputStore", "new_run_id", "table_of"]

log = logging.getLogger(__name__)
VIDEOS_FILE = "videos.parquet"
def _params(root: str, previous: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    """The embedding params to write with: ``given`` (which must match the rows ``root`` holds), else the held ones."""
    held = (previous.get("schema_params") or {}).get("clip")
    if given is not None and held is not None and held != given and sum((previous.get("rows") or {}).values()):
        raise ConfigError(f"OUTPUT {root} holds clip embeddings as {held}; this pipeline gives {given}. "
                          "Write to a new OUTPUT (another CLIP model or embedding dtype changes the column type).")
    if given is not None:
        return dict(given)
    return dict(held) if held is not None else json.loads(load_schema("clip").metadata[b"curate.schema_params"])


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


class OutputStore:
    """Buffered, crash-safe writer of one OUTPUT; use :meth:`open`, then ``add``… and ``close``.

    ``recovered`` lists the files (relative paths) that opening removed as
    leftovers of an interrupted commit; ``run_id`` is this run's id.
    ``config``, ``location``, ``schema_params``, ``target_bytes`` and
    ``row_group_rows`` are read by rewrites (:mod:`curate.output.rewrite`).
    """

    def __init__(self, loc: Location, config: PipelineConfig, run_id: str, lock: Lock, previous: dict[str, Any],
                 schema_params: dict[str, Any] | None = None, models: dict[str, Any] | None = None, command: str = "run"):
        held = previous.get("schema_versions")
        # a table added since (``latents``) is absent from an older manifest, which is no mismatch
        if held and any(held.get(t, v) != v for t, v in schema_versions().items()) and (previous.get("ledger") or {}).get("parts"):
            raise ConfigError(f"OUTPUT {loc.root} was written with schema versions {held}; this curate reads them "
                              f"(inspect, report, validate, the loader) but writes {schema_versions()} only, and one "
                              "OUTPUT holds one version: run into a new OUTPUT")
        self.run_id, self._loc, self._lock, self.config = run_id, loc, lock, config
        self._tag = hashlib.sha1(run_id.encode()).hexdigest()[:8]
        self.schema_params = _params(loc.root, previous, schema_params)
        self._models = models if models is not None else previous.get("models") or {}
        self._config = config.model_dump(mode="json")
        self._config_hash = mf.config_hash(self._config)
        self.target_bytes = max(1, int(config.output.shard_size_mb * 2**20))
        self.row_group_rows = config.output.row_group_rows
        self.location = loc
        self._ledger = Ledger.load(loc)
        self.recovered = recover(loc, set(self._ledger.parts), self._ledger.superseded)
        if self.recovered:
            log.info("OUTPUT %s: removed %d files of an interrupted commit", loc.root, len(self.recovered))
        if command == "run":
            check_run_fits(loc.root, previous.get("config"), self._config)
        self._shards = mf.scan_shards(loc, set(self._ledger.parts), previous.get("shards") or {}, self._ledger.superseded)
        cached = {t: (previous.get(t) or {}).get("shards") or [] for t in DERIVED}
        self._derived = mf.scan_shards(loc, set(self._ledger.parts), cached, self._ledger.superseded, tables=DERIVED)
        self._created = previous.get("created") or mf.now()
        self._runs = mf.start_run(previous.get("runs") or [], run_id, self._config_hash, command)
        self._videos_file: str | None = None
        self._rows = RowMaker(run_id, self._config_hash, self.schema_params)
        self._buf = RowBuffer()
        self._pieces = Pieces()  # clip pieces written ahead of their videos' records (staged until the commit)
        self._piece_seq = 0
        self._closed = False
        self._write_manifest()

    @classmethod
    def open(cls, output: str, config: PipelineConfig, run_id: str | None = None, *,
             schema_params: dict[str, Any] | None = None, models: dict[str, Any] | None = None,
             command: str = "run") -> "OutputStore":
        """Lock ``output`` (a path or fsspec URI), recover an interrupted commit and load the ledger.

        Args:
            schema_params: the clip schemas' placeholders (``EMBED_DIM``, ``EMBED_DTYPE``);
                ``None`` keeps those the output was written with (else the schema defaults).
            models: what the manifest records about the models (``None`` keeps the previous record).
            command: what opened it (``run``, ``refilter``), recorded in the run history.

        Raises:
            LockedError: another run is writing to ``output``.
            ConfigError: ``schema_params`` differ from those ``output`` was written with.
        """
        loc = Location.of(output)
        # a derived table's directory is made by what writes it: a run with a latents section writes latents
        for d in ("", LEDGER_DIR, *TABLES, *(["latents"] if config.latents is not None else [])):
            loc.fs.makedirs(loc.path(d), exist_ok=True)
        run_id = run_id or new_run_id()
        lock = acquire(loc, run_id)
        try:
            return cls(loc, config, run_id, lock, mf.read(loc) or {}, schema_params, models, command)
        except BaseException:
            lock.release()
            raise

    # -- what the driver asks -------------------------------------------------------------

    def finished_ids(self) -> set[str]:
        """Videos committed as ``done`` or ``rejected``: skip them. ``failed`` ones are retried."""
        return self._ledger.finished_ids()

    def maybe_finished(self, uri: str, size: int | None) -> bool:
        """Whether ``uri`` of ``size`` may be a committed done or rejected video (confirm by its ``video_id``)."""
        return self._ledger.maybe_finished(uri, size)

    def status(self, video_id: str) -> str | None:
        """Committed status of ``video_id`` (``None`` if never committed; buffered ones are not yet)."""
        return self._ledger.status(video_id)

    def funnel(self) -> dict[str, Any]:
        """The funnel of what is committed so far (the same dict the manifest holds)."""
        rows = {t: sum(e["rows"] for e in entries) for t, entries in self._shards.items()}
        reasons: Counter[str] = Counter()
        for entry in self._shards.get(fn.REJECTED_TABLE, []):
            reasons.update(entry.get("reasons", {}))
        return fn.compute(self._ledger.states.values(), rows, dict(reasons))

    # -- writing ---------------------------------------------------------------------------

    def add(self, video: dict[str, Any]) -> Outcome | None:
        """Buffer a finished video record (commits once the shard target is reached); returns its outcome.

        A clip piece is staged at once and returns ``None``, as does a
        duplicate; a record's outcome counts its pieces, which always come
        before it here.

        Raises:
            ValueError: the record is not finished, or its rows do not match the schemas
                (a pipeline bug; nothing of the record is buffered).
        """
        if is_piece(video):  # its rows go to a staged file now, committed with the video's record
            self._stage_piece(video)
            return None
        vid = video.get("video_id")
        if vid and (self._ledger.status(vid) in (DONE, REJECTED) or self._buf.status.get(vid) in (DONE, REJECTED)):
            log.warning("video %s (%s) is already finished; ignoring the duplicate", vid, video.get("uri"))
            return None
        own, video = own_piece(video)
        rows = self._rows.rows(video)
        if own is not None:
            self._stage_piece(own)
        self._buf.add(rows)
        settled = self._pieces.settle([outcome(video)])  # before a commit takes the pieces
        if self._buf.full(self.target_bytes):
            self.commit()
        return settled[-1] if settled else None

    def _stage_piece(self, piece: dict[str, Any]) -> None:
        self._piece_seq += 1
        name = f"{STAGED_PREFIX}{self._tag}-store-p{self._piece_seq:06d}"
        self._pieces.add(stage_piece(self._loc, self._rows, piece, name, self.row_group_rows))

    @property
    def tag(self) -> str:
        """This run's tag: the suffix of its part ids, and the prefix of its workers' staged files."""
        return self._tag

    @property
    def rows(self) -> RowMaker:
        """What turns this run's records into rows (workers that write shards get a copy)."""
        return self._rows

    def commit(self) -> None:
        """Commit everything buffered (see the module docstring); a no-op when nothing is."""
        buf = self._buf
        if not buf.videos:
            return
        self._lock.check()
        taken = self._pieces.take(buf.videos, buf.pieces)
        if taken is None:  # a record's pieces always come before it
            raise RuntimeError(f"clip pieces of {sorted(buf.pieces)[:5]} missing at commit; not committed")
        ledger_rows, joined = taken
        part = part_name(self._ledger.next_seq, self._tag)
        data = [(table, f"{table}/{part}-{k:03d}.parquet", t) for table, k, t in buf.files(self.target_bytes)]
        moves = [(f, f"{f.table}/{part}-{k:03d}.parquet") for k, f in enumerate((f for p in joined for f in p.files), len(data))]
        rows = [dict(r, part=part) for r in ledger_rows]
        ledger_rel = f"{LEDGER_DIR}/{part}.parquet"
        # the latents of the buffered videos and of their pieces: one sidecar, as `curate latents` commits record them
        sidecar = self._latents_sidecar(part, joined_sets(buf.sets, joined),
                                        [rel for table, rel, _ in data if table in DERIVED] + [rel for f, rel in moves if f.table in DERIVED])
        sizes = commit_files(self._loc, [(rel, t) for _, rel, t in data], (ledger_rel, to_table(rows, "videos")), self.row_group_rows,
                             None if sidecar is None else (sidecar_name(part), json.dumps(sidecar, indent=1).encode()),
                             moves=[(f.temp, rel) for f, rel in moves])
        for table, rel, t in data:
            self._entries(table).append(mf.shard_entry(rel, sizes[rel], t))
        for f, rel in moves:
            self._entries(f.table).append(dict(path=rel, part=part, **f.entry))
        self._ledger.apply(rows, part, sidecar)
        self._buf = RowBuffer()
        self._write_manifest()

    def commit_staged(self, staged: Staged) -> None:
        """Commit data files a worker wrote under temp names (:mod:`curate.output.writer`), with their ledger rows.

        The files are moved to this commit's part names and the ledger part is
        written last, as :meth:`commit` does with files it writes itself; no
        clip data passes through this process.
        """
        ids = [r["video_id"] for r in staged.ledger_rows]
        dup = [v for v in ids if self._ledger.status(v) in (DONE, REJECTED)] or [v for v, n in Counter(ids).items() if n > 1]
        if dup:  # the work list skips finished videos and names each once, so this is a bug: refuse rather than store clips twice
            raise RuntimeError(f"staged rows of already finished videos {dup[:5]}; not committed")
        self._lock.check()
        part = part_name(self._ledger.next_seq, self._tag)
        moves, entries = [], []
        for k, f in enumerate(staged.files):
            rel = f"{f.table}/{part}-{k:03d}.parquet"
            moves.append((f.temp, rel))
            entries.append((f.table, dict(path=rel, part=part, **f.entry)))
        rows = [dict(r, part=part) for r in staged.ledger_rows]
        sidecar = self._latents_sidecar(part, staged.sets, [rel for (table, _), (_, rel) in zip(entries, moves) if table in DERIVED])
        publish(self._loc, [], (f"{LEDGER_DIR}/{part}.parquet", checked(part, rows, "videos")), self.row_group_rows,
                None if sidecar is None else (sidecar_name(part), json.dumps(sidecar, indent=1).encode()), moves=moves)
        for table, entry in entries:
            self._entries(table).append(entry)
        self._ledger.apply(rows, part, sidecar)
        self._write_manifest()

    def _entries(self, table: str) -> list[dict[str, Any]]:
        """The committed shard entries of ``table``, a clip table or a derived one (in-run latents)."""
        return self._derived[table] if table in DERIVED else self._shards[table]

    def _latents_sidecar(self, part: str, sets: dict[str, dict[str, Any]], files: list[str]) -> dict[str, Any] | None:
        """The sidecar of a run commit that adds latents: it records their sets as ``curate latents`` commits do.

        ``run_commit`` says the commit also holds the run's videos (their time counts); ``None`` without latents.
        """
        if not sets:
            return None
        earlier = mf.derived_section("latents", [], self.versions)["sets"]
        for key, info in sets.items():
            if key in earlier and earlier[key]["shape"] != info["shape"]:
                raise RuntimeError(f"latents {key}: shape {info['shape']}, earlier ones {earlier[key]['shape']}")
        return {"kind": "latents", "run_commit": True, "vae": next(iter(sets.values()))["id"],
                "computed": sum(info["rows"] for info in sets.values()), "sets": dict(sorted(sets.items())),
                "part": part, "run_id": self.run_id, "created": mf.now(), "supersedes": [], "files": files}

    def remove_staged(self) -> list[str]:
        """Delete this run's worker-staged files that were never committed (a writer that died mid-file)."""
        return remove_staged(self._loc, f"{STAGED_PREFIX}{self._tag}-")

    # -- rewrites (dedup, refilter) ----------------------------------------------------------

    @property
    def shards(self) -> dict[str, list[dict[str, Any]]]:
        """Manifest entries of the committed shards per clip table (do not modify)."""
        return self._shards

    @property
    def derived(self) -> dict[str, list[dict[str, Any]]]:
        """Manifest entries of the committed shards per derived table, e.g. ``latents`` (do not modify)."""
        return self._derived

    @property
    def versions(self) -> list[dict[str, Any]]:
        """The sidecars of the committed rewrites, in commit order (do not modify)."""
        return self._ledger.rewrites

    def next_part(self) -> str:
        """The part id the next commit gets; a rewrite names its staged files with it."""
        return part_name(self._ledger.next_seq, self._tag)

    def latest_rows(self, video_ids: set[str]) -> list[dict[str, Any]]:
        """The latest ledger row of each of ``video_ids`` (what a rewrite updates the counts of)."""
        rows = latest(read_parts(self._loc, self._ledger.parts))
        return [r for r in rows.to_pylist() if r["video_id"] in video_ids]

    def commit_rewrite(self, part: str, entries: dict[str, list[dict[str, Any]]], supersedes: list[str],
                       ledger_rows: list[dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
        """Commit staged data files that replace the committed files ``supersedes``; returns the sidecar.

        Args:
            part: :meth:`next_part` at staging time; ``entries`` are manifest entries of its staged files
                per table (clip tables or derived ones such as ``latents``).
            ledger_rows: the new latest rows (new counts) of every video whose rows moved.
            info: what the sidecar and the manifest's ``versions`` record (kind, thresholds...).
        """
        if self._buf.videos:
            raise RuntimeError("commit() the buffered videos before a rewrite")
        if part != self.next_part():
            raise RuntimeError(f"rewrite staged as {part} but the next commit is {self.next_part()}")
        self._lock.check()
        rows = [dict(r, part=part) for r in ledger_rows]
        files = [e["path"] for es in entries.values() for e in es]
        sidecar = dict(info, part=part, run_id=self.run_id, created=mf.now(), supersedes=sorted(supersedes), files=files)
        publish(self._loc, files, (f"{LEDGER_DIR}/{part}.parquet", checked(part, rows, "videos")), self.row_group_rows,
                (sidecar_name(part), json.dumps(sidecar, indent=1).encode()))
        gone = set(supersedes)
        for table in TABLES:
            self._shards[table] = [e for e in self._shards[table] if e["path"] not in gone] + entries.get(table, [])
        for table in DERIVED:
            self._derived[table] = [e for e in self._derived[table] if e["path"] not in gone] + entries.get(table, [])
        self._ledger.apply(rows, part, sidecar)
        self._write_manifest()
        for rel in sorted(gone):  # after the commit; recovery deletes them if this is cut short
            self._loc.fs.rm_file(self._loc.path(rel))
        return sidecar

    def _write_manifest(self) -> None:
        mf.write(self._loc, mf.build(
            run_id=self.run_id, runs=self._runs, created=self._created, config=self._config,
            shards=self._shards, tables=dict(TABLES), ledger_parts=self._ledger.parts,
            funnel=self.funnel(), timings=self._ledger.timings_summary(), videos_file=self._videos_file,
            schema_params={s: self.schema_params for s in PARAM_SCHEMAS}, models=self._models, versions=self._ledger.rewrites,
            derived=self._derived,
        ))

    def close(self, status: str = "completed") -> None:
        """Commit the buffer, write ``videos.parquet`` and the final manifest, release the lock.

        Args:
            status: how the run ended, recorded in the manifest's run history:
                ``completed``, ``failed`` or ``interrupted``.
        """
        if status not in mf.END_STATUSES:
            raise ValueError(f"close status must be one of {sorted(mf.END_STATUSES)}, got {status!r}")
        if self._closed:
            return
        try:
            self.commit()
            self.remove_staged()
            write_tables(self._loc, VIDEOS_FILE, to_table([], "videos").schema, self._ledger.latest_parts(self._loc))
            self._videos_file = VIDEOS_FILE
            mf.end_run(self._runs, self.run_id, status)
            self._write_manifest()
        finally:
            self._closed = True
            self._lock.release()

    def __enter__(self) -> "OutputStore":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: Any) -> None:
        if exc_type is None:
            self.close("completed")
        else:
            self.close("interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed")
