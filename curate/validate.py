"""Check an output against its contract, from the files alone (``curate validate OUTPUT``).

Nothing here trusts the writer's bookkeeping: row counts, the funnel and
per-video clip counts are recomputed from the shards and the ledger and
compared with what ``manifest.json`` and ``videos.parquet`` claim.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.output import funnel as fn
from curate.output import manifest as mf
from curate.output.ledger import VideoState, committed_parts, latest, read_parts, read_sidecars
from curate.output.shards import LEDGER_DIR, Location, parse_part, read_table
from curate.output.store import VIDEOS_FILE
from curate.output.legacy import upgrade
from curate.schema import READABLE, check_schema, check_table, load_schema, schema_versions

_KEYS = ("clip_id", "video_id", "reject_reasons")
_LEDGER_COUNT = fn.LEDGER_COUNT


def validate(output: str, deep: bool = True, decode: bool = False) -> list[str]:
    """Problems found in ``output`` (a path or fsspec URI); an empty list means it is valid.

    Args:
        deep: decode every column of every shard (proves each is readable and
            checks non-null columns); ``False`` reads footers and key columns only.
        decode: also decode every stored clip's video bytes and check them
            against the row (:func:`check_clip_bytes`); one problem per bad clip.
    """
    loc = Location.of(output)
    try:
        doc = mf.read(loc)
    except ValueError as e:
        return [f"{mf.MANIFEST}: not valid JSON: {e}"]
    if doc is None:
        return [f"{mf.MANIFEST} not found in {output}: not a curate output, or no run ever opened it"]
    problems = _check_header(doc)
    parts = [p for _, p in committed_parts(loc)]
    if doc.get("ledger", {}).get("parts") != parts:
        problems.append(f"manifest lists {len(doc.get('ledger', {}).get('parts', []))} ledger parts, {LEDGER_DIR}/ has {len(parts)}")
    problems += [f"{LEDGER_DIR}/{n}: uncommitted temp file" for n in loc.names(LEDGER_DIR) if n.endswith(".tmp")]
    ledger = read_parts(loc, parts)
    problems += [f"{LEDGER_DIR}: {p}" for p in check_table(ledger, "videos")]
    videos = latest(ledger)
    sidecars = read_sidecars(loc, parts)
    superseded = {rel: s["part"] for s in sidecars for rel in s["supersedes"]}
    if [v.get("part") for v in doc.get("versions", [])] != [s["part"] for s in sidecars]:
        problems.append(f"manifest versions {[v.get('part') for v in doc.get('versions', [])]} differ from the "
                        f"rewrite sidecars in {LEDGER_DIR}/ {[s['part'] for s in sidecars]}")

    keys: dict[str, pa.Table] = {}
    for table, schema in (doc.get("tables") or {}).items():
        params = (doc.get("schema_params") or {}).get(schema)
        p, keys[table] = _check_table_dir(loc, table, _Schema(schema, params), doc.get("shards", {}).get(table, []), set(parts),
                                          superseded, deep)
        problems += p
    problems += _check_latents(loc, doc, keys, set(parts), superseded, deep)
    problems += _check_text_embeddings(loc, doc, keys, set(parts), superseded, deep)
    problems += _check_ids(keys)
    problems += _check_counts(keys, videos)
    problems += _check_funnel(doc, keys, videos)
    problems += _check_videos_file(loc, doc, videos)
    if decode:
        problems += _check_decode(loc, doc, ((doc.get("config") or {}).get("encode") or {}).get("max_fps"))
    return problems


def stale_inputs(output: str) -> list[str]:
    """Notes on inputs replaced under the same name: their older identities' rows (and clips) are still in OUTPUT.

    A replaced file is a new input (its identity hashes its bytes), so both
    versions' rows are committed and consistent; this is a note, not a problem.
    """
    loc = Location.of(output)
    parts = [p for _, p in committed_parts(loc)]
    if not parts:
        return []
    videos = latest(read_parts(loc, parts)).select(["video_id", "uri"]).to_pylist()
    ids_by_uri: dict[str, list[str]] = {}
    for row in videos:  # commit order: the last id of a uri is its newest identity
        ids_by_uri.setdefault(row["uri"], []).append(row["video_id"])
    return [f"{uri} was replaced: rows of {len(ids) - 1} older version(s) ({', '.join(ids[:-1])}) are still in OUTPUT; "
            f"the current file is video {ids[-1]}" for uri, ids in sorted(ids_by_uri.items()) if len(ids) > 1]


_DECODE_COLUMNS = ["clip_id", "video", "video_format", "num_frames", "duration_s", "fps", "source_fps", "width", "height"]


def check_clip_bytes(row: dict[str, Any], max_fps: float | None = None) -> str | None:
    """What is wrong with a stored clip's bytes given its row, or None.

    The MP4 must decode to exactly ``num_frames`` frames of ``width`` x
    ``height``, spanning ``duration_s`` (first frame's start to last frame's
    end) within one frame. Only when the run's ``encode.max_fps`` thinned the
    clip (``fps == max_fps < source_fps``) does it hold ``round(duration_s *
    fps)`` frames instead, give or take one.
    """
    import io

    import av

    if row.get("video_format") == "reference":
        return None
    data = row.get("video")
    if not data:
        return f"no video bytes (video_format {row.get('video_format')!r})"
    times, sizes = [], set()
    try:
        with av.open(io.BytesIO(data)) as c:
            stream = c.streams.video[0]
            tb = stream.time_base
            for f in c.decode(stream):
                if f.pts is None:
                    return f"frame {len(times)} has no timestamp"
                times.append((float(f.pts * tb), float((f.duration or 0) * tb)))
                sizes.add((f.width, f.height))
    except Exception as e:  # noqa: BLE001 - any decode error is the problem reported
        return f"does not decode: {type(e).__name__}: {e}"
    n, claimed, duration, fps = len(times), row["num_frames"], row["duration_s"], row["fps"] or 0.0
    thinned = bool(max_fps) and abs(fps - max_fps) < 1e-6 and (row.get("source_fps") or 0.0) > max_fps
    if thinned:
        expected = round(duration * fps)
        if abs(n - expected) > 1:
            return f"decodes to {n} frames, its row says {duration:.3f} s at {fps:g} fps (thinned: ~{expected})"
    elif n != claimed:
        return f"decodes to {n} frames, its row says num_frames {claimed}"
    if n == 0:
        return "decodes to no frames"
    if sizes != {(row["width"], row["height"])}:
        return f"frames are {sorted(sizes)}, its row says {row['width']}x{row['height']}"
    last_duration = times[-1][1] or (times[-1][0] - times[-2][0] if n > 1 else 0.0)
    span = times[-1][0] + last_duration - times[0][0]
    frame = max(duration / max(1, claimed), 1.0 / fps if fps > 0 else 0.0)
    if abs(span - duration) > frame + 1e-3:
        return f"spans {span:.3f} s, its row says duration_s {duration:.3f}"
    return None


def _check_decode(loc: Location, doc: dict[str, Any], max_fps: float | None) -> list[str]:
    """:func:`check_clip_bytes` on every row of every table that stores video bytes."""
    problems = []
    for table, entries in (doc.get("shards") or {}).items():
        for entry in entries:
            rel = entry["path"]
            try:
                with loc.fs.open(loc.path(rel), "rb") as f:
                    pf = pq.ParquetFile(f)
                    if "video" not in pf.schema_arrow.names:
                        break  # this table holds no bytes (rejected/)
                    for rg in range(pf.num_row_groups):  # row groups, not iter_batches: synchronous (curate.data.index)
                        for row in pf.read_row_group(rg, columns=_DECODE_COLUMNS, use_threads=False).to_pylist():
                            if (p := check_clip_bytes(row, max_fps)) is not None:
                                problems.append(f"{rel}: clip {row['clip_id']}: {p}")
            except Exception as e:  # noqa: BLE001 - reported; the other shards are still checked
                problems.append(f"{rel}: cannot check clips: {type(e).__name__}: {e}")
    return problems


def _check_header(doc: dict[str, Any]) -> list[str]:
    problems = [f"manifest: missing key {k!r}" for k in ("run_id", "runs", "config", "config_hash", "schema_versions",
                                                         "tables", "shards", "ledger", "funnel") if k not in doc]
    if "config" in doc and mf.config_hash(doc["config"]) != doc.get("config_hash"):
        problems.append(f"manifest: config_hash {doc.get('config_hash')} does not match its config ({mf.config_hash(doc['config'])})")
    have = doc.get("schema_versions") or {}
    if have != schema_versions() and not all(READABLE.get(t, ()) and v in READABLE[t] for t, v in have.items()):
        problems.append(f"manifest: written with schema versions {have}, this curate reads {schema_versions()} "
                        f"(and {READABLE} through its legacy reader)")
    last = (doc.get("runs") or [{}])[-1]
    if last.get("status") not in mf.END_STATUSES:
        problems.append(f"run {last.get('run_id')} did not close (status {last.get('status')}): it is still running, "
                        "or it died and the output needs reopening to recover")
    return problems


class _Schema(NamedTuple):
    name: str
    params: dict[str, Any] | None


def _check_table_dir(loc: Location, table: str, schema: _Schema, entries: list[dict[str, Any]], parts: set[str],
                     superseded: dict[str, str], deep: bool) -> tuple[list[str], pa.Table]:
    """Every file of one table directory vs the manifest; every shard (listed or not) vs the schema.

    Unlisted ``*.parquet`` files are read too: a plain glob reader sees them,
    so their rows count for duplicate ids and per-video counts.
    """
    problems = []
    on_disk = loc.names(table)
    listed = {e["path"]: e for e in entries}
    for name in on_disk:
        rel = f"{table}/{name}"
        if name.endswith(".tmp"):
            problems.append(f"{rel}: uncommitted temp file")
        elif rel in superseded:
            problems.append(f"{rel}: superseded by rewrite {superseded[rel]} but still present (reopen OUTPUT to delete it)")
        elif rel not in listed:
            committed = (parse_part(name) or ("",))[0] in parts
            why = "unlisted shard" if committed else "orphan of an interrupted commit or a foreign file"
            problems.append(f"{rel}: not in the manifest ({why})")
    expected = load_schema(schema.name, params=schema.params)
    cols = [c for c in _KEYS if c in expected.names]
    key_schema = pa.schema([(c, expected.field(c).type) for c in cols])
    found = [key_schema.empty_table()]
    globbed = {f"{table}/{n}" for n in on_disk if n.endswith(".parquet") and not n.startswith((".", "_"))}
    for rel in sorted(set(listed) | globbed):
        name, entry = rel.split("/", 1)[-1], listed.get(rel)
        if name not in on_disk:
            problems.append(f"{rel}: listed in the manifest but missing")
            continue
        if entry and (parse_part(name) or ("",))[0] not in parts:
            problems.append(f"{rel}: its ledger part does not exist (not committed)")
        try:
            p, got = _check_shard(loc, rel, schema, cols, deep)
        except Exception as e:  # noqa: BLE001 - any read error means the shard is unreadable
            problems.append(f"{rel}: unreadable: {type(e).__name__}: {e}")
            continue
        problems += p
        if got is None:
            continue
        found.append(got.cast(key_schema))
        if entry and (entry.get("rows"), entry.get("bytes")) != (got.num_rows, on_disk[name]):
            problems.append(f"{rel}: manifest says {entry.get('rows')} rows / {entry.get('bytes')} bytes, "
                            f"file has {got.num_rows} / {on_disk[name]}")
        if entry and "reject_reasons" in cols and entry.get("reasons") != fn.reason_counts(got):
            problems.append(f"{rel}: manifest reason counts differ from the file")
    return problems, pa.concat_tables(found)


def _check_shard(loc: Location, rel: str, schema: _Schema, cols: list[str], deep: bool) -> tuple[list[str], pa.Table | None]:
    with loc.fs.open(loc.path(rel), "rb") as f:
        pf = pq.ParquetFile(f)
        version = _version(pf.schema_arrow, schema.name)  # an older file is checked against its own version
        problems = [f"{rel}: {p}" for p in check_schema(pf.schema_arrow, schema.name, schema.params, version)]
        if problems:
            return problems, None
        nulls: Counter[str] = Counter()
        required = [fld.name for fld in load_schema(schema.name, version, params=schema.params) if not fld.nullable]
        groups = []
        for rg in range(pf.num_row_groups):  # row groups, not iter_batches: synchronous (curate.data.index)
            group = pf.read_row_group(rg, columns=None if deep else cols, use_threads=False)
            for name in required:
                if name in group.schema.names:
                    nulls[name] += group.column(name).null_count
            groups.append(group.select(cols))
        table = pa.concat_tables(groups) if groups else pa.schema([pf.schema_arrow.field(c) for c in cols]).empty_table()
    table = upgrade(table, cols)
    problems += [f"{rel}: column {c}: {n} nulls in a non-nullable column" for c, n in nulls.items() if n]
    return problems, table


def _version(schema: pa.Schema, name: str) -> int | None:
    """The version a shard's footer declares when it is one this curate reads, else ``None`` (the current one)."""
    try:
        version = int((schema.metadata or {}).get(b"curate.schema_version", b""))
    except ValueError:
        return None
    return version if version in READABLE.get(name, ()) else None


def _check_latents(loc: Location, doc: dict[str, Any], keys: dict[str, pa.Table], parts: set[str],
                   superseded: dict[str, str], deep: bool) -> list[str]:
    """The latents table vs its manifest section: files, schema, one row per (clip, VAE, bucket),
    clips the output holds, byte sizes of the recorded shape and dtype, rows per set."""
    section = doc.get("latents") or {}
    if not section and not any(n.endswith(".parquet") for n in loc.names("latents")):
        return []
    problems, _ = _check_table_dir(loc, "latents", _Schema("latents", None), section.get("shards") or [], parts, superseded, deep)
    sets = section.get("sets") or {}
    tables = []
    for e in section.get("shards") or []:
        try:
            t = read_table(loc, e["path"], ["clip_id", "vae", "bucket", "latent", "logvar"])
        except Exception:  # noqa: BLE001 - reported by _check_table_dir
            continue
        tables.append(pa.table({"clip_id": t["clip_id"], "key": pc.binary_join_element_wise(t["vae"], t["bucket"], "/"),
                                "size": pc.binary_length(t["latent"]), "logvar": pc.binary_length(t["logvar"])}))
    if not tables:
        return problems + ([f"manifest latents lists {section.get('rows')} rows, the files none"] if section.get("rows") else [])
    rows = pa.concat_tables(tables)
    problems += _keyed_rows("latents", "(clip, VAE, bucket)", rows, "key", keys)
    for key, info, mask in _described_sets("latents", rows, "key", sets, problems):
        nbytes = int(np.prod(info["shape"])) * 2  # float16 and bfloat16 both
        sizes = set(rows["size"].filter(mask).to_pylist())
        if sizes - {nbytes}:
            problems.append(f"latents: {key} holds tensors of {sorted(sizes)} bytes, shape {info['shape']} {info['dtype']} is {nbytes}")
        logvar = set(rows["logvar"].filter(mask).to_pylist())
        if logvar != ({nbytes} if info.get("posterior") else {None}):
            problems.append(f"latents: {key} logvar sizes {sorted(logvar, key=str)} do not fit posterior={info.get('posterior')}")
    return problems


def _keyed_rows(table: str, what: str, rows: pa.Table, key: str, keys: dict[str, pa.Table]) -> list[str]:
    """A derived table's rows: one per clip and ``key`` column value, only of clips the output holds."""
    problems = []
    ids = pc.binary_join_element_wise(rows["clip_id"], rows[key], "/")
    dups = [v["values"] for v in pc.value_counts(ids).to_pylist() if v["counts"] > 1]
    if dups:
        problems.append(f"{table}: {len(dups)} {what} have more than one row, e.g. {dups[:3]}")
    held = set().union(*(set(k.column("clip_id").to_pylist()) for k in keys.values())) if keys else set()
    orphans = set(rows["clip_id"].to_pylist()) - held
    if orphans:
        problems.append(f"{table}: rows of {len(orphans)} clips the output does not hold, e.g. {sorted(orphans)[:3]}")
    return problems


def _described_sets(table: str, rows: pa.Table, key: str, sets: dict[str, Any],
                    problems: list[str]) -> Iterator[tuple[str, dict[str, Any], pa.ChunkedArray]]:
    """Each set (value of ``key``) the manifest describes, with its row mask; row counts and undescribed sets go to ``problems``."""
    counts = {v["values"]: v["counts"] for v in pc.value_counts(rows[key]).to_pylist()}
    for name in sorted(set(counts) | set(sets)):
        info = sets.get(name)
        if info is None:
            problems.append(f"{table}: {counts[name]} rows of {name}, which the manifest's {table}.sets does not describe")
            continue
        if counts.get(name, 0) != info.get("rows"):
            problems.append(f"{table}: {name} has {counts.get(name, 0)} rows, the manifest says {info.get('rows')}")
        yield name, info, pc.equal(rows[key], name)


def _check_text_embeddings(loc: Location, doc: dict[str, Any], keys: dict[str, pa.Table], parts: set[str],
                           superseded: dict[str, str], deep: bool) -> list[str]:
    """The text_embeddings table vs its manifest section: files, schema, one row per (clip, encoder),
    clips the output holds, embedding and mask sizes of the recorded shape and dtype, rows per encoder."""
    section = doc.get("text_embeddings") or {}
    if not section and not any(n.endswith(".parquet") for n in loc.names("text_embeddings")):
        return []
    problems, _ = _check_table_dir(loc, "text_embeddings", _Schema("text_embeddings", None), section.get("shards") or [], parts,
                                   superseded, deep)
    tables = []
    for e in section.get("shards") or []:
        try:
            t = read_table(loc, e["path"], ["clip_id", "encoder", "embedding", "mask"])
        except Exception:  # noqa: BLE001 - reported by _check_table_dir
            continue
        tables.append(pa.table({"clip_id": t["clip_id"], "encoder": t["encoder"], "size": pc.binary_length(t["embedding"]),
                                "mask": pc.binary_length(t["mask"])}))
    if not tables:
        return problems + ([f"manifest text_embeddings lists {section.get('rows')} rows, the files none"] if section.get("rows") else [])
    rows = pa.concat_tables(tables)
    problems += _keyed_rows("text_embeddings", "(clip, encoder)", rows, "encoder", keys)
    sets = section.get("sets") or {}
    for enc, info, mask in _described_sets("text_embeddings", rows, "encoder", sets, problems):
        nbytes = int(np.prod(info["shape"])) * 2  # float16 and bfloat16 both
        sizes, masks = set(rows["size"].filter(mask).to_pylist()), set(rows["mask"].filter(mask).to_pylist())
        if sizes - {nbytes} or masks - {info["shape"][0]}:
            problems.append(f"text_embeddings: {enc} holds embeddings of {sorted(sizes)} bytes and masks of {sorted(masks)}; "
                            f"shape {info['shape']} {info['dtype']} is {nbytes} and {info['shape'][0]}")
    return problems


def _check_ids(keys: dict[str, pa.Table]) -> list[str]:
    ids = pa.chunked_array([t.column("clip_id").combine_chunks() for t in keys.values()], pa.string())
    counts = pc.value_counts(ids)
    dups = [v["values"] for v in counts.to_pylist() if v["counts"] > 1]
    return [f"{len(dups)} clip ids occur more than once across {sorted(keys)}, e.g. {dups[:3]}"] if dups else []


def _check_counts(keys: dict[str, pa.Table], videos: pa.Table) -> list[str]:
    """Rows per video in each table vs the ledger's count for that video."""
    problems = []
    ledger = {r["video_id"]: r for r in videos.select(["video_id", "status", *_LEDGER_COUNT.values()]).to_pylist()}
    for table, column in _LEDGER_COUNT.items():
        if table not in keys:
            continue
        per_video = keys[table].group_by("video_id").aggregate([("clip_id", "count")])
        have = dict(zip(per_video["video_id"].to_pylist(), per_video["clip_id_count"].to_pylist(), strict=True))
        for vid, n in have.items():
            if vid not in ledger or ledger[vid]["status"] == "failed":
                problems.append(f"{table}: {n} rows of video {vid}, which the ledger has {'as failed' if vid in ledger else 'not at all'}")
        wrong = [vid for vid, r in ledger.items() if have.get(vid, 0) != r[column]]
        if wrong:
            problems.append(f"{table}: rows per video differ from ledger {column} for {len(wrong)} videos, e.g. {wrong[:3]}")
    return problems


def _check_funnel(doc: dict[str, Any], keys: dict[str, pa.Table], videos: pa.Table) -> list[str]:
    states = [VideoState(r["status"], r["reason_key"], r["num_clips"])
              for r in videos.select(["status", "reason_key", "num_clips"]).to_pylist()]
    reasons = fn.reason_counts(keys[fn.REJECTED_TABLE]) if fn.REJECTED_TABLE in keys else {}
    funnel = fn.compute(states, {t: k.num_rows for t, k in keys.items()}, reasons)
    problems = [f"funnel check failed: {name}" for name, ok in funnel["checks"].items() if not ok]
    for key, value in funnel.items():
        if doc.get("funnel", {}).get(key) != value:
            problems.append(f"manifest funnel {key} = {json.dumps(doc.get('funnel', {}).get(key))}, files give {json.dumps(value)}")
    return problems


def _check_videos_file(loc: Location, doc: dict[str, Any], videos: pa.Table) -> list[str]:
    if not doc.get("videos"):  # fine while the run is open: the header check reports that
        closed = (doc.get("runs") or [{}])[-1].get("status") in mf.END_STATUSES
        return [f"manifest does not list {VIDEOS_FILE}"] if closed else []
    try:
        table = read_table(loc, doc["videos"])
    except Exception as e:  # noqa: BLE001 - reported as a problem
        return [f"{doc['videos']}: unreadable: {type(e).__name__}: {e}"]
    problems = [f"{doc['videos']}: {p}" for p in check_table(table, "videos")]

    def rows(t: pa.Table) -> list[dict[str, Any]]:
        return sorted(t.to_pylist(), key=lambda r: r["video_id"])

    if not problems and rows(table) != rows(videos):
        problems.append(f"{doc['videos']}: differs from the latest ledger rows")
    return problems
