"""Add caption embeddings of the accepted clips to a finished OUTPUT (``curate latents`` with a ``text_embeddings:`` section).

Text-conditioned trainers run a frozen text encoder (T5, CLIP text) over every
caption on every step; computing it once here is the point, as for latents.
For each accepted clip (``clips/``) the *final* caption -- what the table holds
now, after review edits -- is tokenized to ``max_length`` and run through the
encoder; the last hidden state ``(L, D)`` and the attention mask are stored as
fp16/bf16 and uint8 bytes in ``text_embeddings/part-*.parquet``, with the
caption's SHA-256.

A later pass recomputes only clips whose caption hash differs from their row's
(or that have none). Commits go through :func:`curate.output.derived.commit_rows`:
the first commit of a pass also supersedes every file holding a stale row,
carrying its other rows over, so a crash at any point followed by the same
command ends with exactly one row per clip and encoder, of the current caption.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.config import ConfigError, PipelineConfig, TextEmbeddingsConfig
from curate.data.latents import to_bytes
from curate.data.text_embeddings import caption_hash
from curate.output import manifest as mf
from curate.output.derived import check_same_maker, commit_rows, committed, models_record, read_compatible
from curate.output.funnel import ACCEPTED_TABLE
from curate.output.rows import MAX_BUFFER_AGE_S
from curate.output.shards import read_table
from curate.output.store import OutputStore, new_run_id
from curate.schema import load_schema, to_table

if TYPE_CHECKING:
    from curate.models.text_encoder import TextEncoder

log = logging.getLogger(__name__)
TABLE = "text_embeddings"
# What must stay the same for one encoder id: otherwise two kinds of tensor would share a name.
_IDENTITY = ("class", "revision", "random_init", "max_length", "dtype", "shape")


@dataclass(frozen=True)
class TextEmbeddingsResult:
    encoder: str
    computed: int  # rows written (new clips and changed captions)
    replaced: int  # of those, clips whose earlier row encoded another caption (superseded)
    skipped: int  # clips whose row encodes their current caption
    uncaptioned: int  # accepted clips without a caption
    commits: int
    seconds: float


@dataclass
class _Pass:
    """One pass: captions waiting for the encoder, rows waiting for a commit, stale files to supersede."""

    store: OutputStore
    cfg: TextEmbeddingsConfig
    load: Callable[[], TextEncoder]  # called on the first batch: a pass with nothing to do loads nothing
    info: dict[str, Any]  # the set record (encoder, max_length, shape, dtype)
    carried: pa.Table | None  # rows of the stale files that stay; committed with the first commit
    supersedes: list[str]
    dropped: int  # stale rows the first commit removes
    encoder: TextEncoder | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    nbytes: int = 0
    since: float = field(default_factory=time.monotonic)
    commits: int = 0
    computed: int = 0

    def add(self, clip: dict[str, Any]) -> None:
        self.pending.append(clip)
        if len(self.pending) >= self.cfg.batch_size:
            self._encode()
        if self.nbytes >= self.store.target_bytes or time.monotonic() - self.since >= MAX_BUFFER_AGE_S:
            self.commit()

    def _encode(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        self.encoder = self.encoder or self.load()
        hidden, mask = self.encoder.encode([c["caption"] for c in batch], self.cfg.max_length)
        if list(hidden.shape[1:]) != self.info["shape"]:
            raise RuntimeError(f"text encoder {self.cfg.encoder.id}: embeddings of shape {list(hidden.shape[1:])}, "
                               f"its config says {self.info['shape']}")
        for i, c in enumerate(batch):
            m = mask[i].numpy().astype(np.uint8)
            self.rows.append({"clip_id": c["clip_id"], "video_id": c["video_id"], "encoder": self.cfg.encoder.id,
                              "caption_sha256": caption_hash(c["caption"]), "tokens": int(m.sum()),
                              "embedding": to_bytes(hidden[i], self.cfg.dtype), "mask": m.tobytes(), "run_id": self.store.run_id})
            self.nbytes += len(self.rows[-1]["embedding"])

    def commit(self, final: bool = False) -> None:
        """Encode what waits (all of it when ``final``), then commit the rows (and the stale files' replacement) as one version."""
        if final:
            self._encode()
        if not self.rows and not self.supersedes:
            return
        data = to_table(self.rows, TABLE)
        if self.carried is not None:
            data = pa.concat_tables([self.carried, data])
        n = len(self.rows) - self.dropped
        sets = {self.cfg.encoder.id: dict(self.info, rows=n)}
        sidecar = commit_rows(self.store, TABLE, data, {"encoder": self.cfg.encoder.id, "computed": len(self.rows),
                                                        "superseded_rows": self.dropped, "sets": sets}, self.supersedes)
        log.info("text_embeddings: committed %d rows of encoder %s as part %s (%d stale rows superseded)", len(self.rows),
                 self.cfg.encoder.id, sidecar["part"], self.dropped)
        self.computed += len(self.rows)
        self.commits += 1
        self.rows, self.nbytes, self.since = [], 0, time.monotonic()
        self.carried, self.supersedes, self.dropped = None, [], 0


def _held(store: OutputStore, encoder: str) -> dict[str, tuple[str, str]]:
    """clip_id -> ``(caption_sha256, file)`` of the committed rows of ``encoder``."""
    have: dict[str, tuple[str, str]] = {}
    for path, t in committed(store, TABLE, ["clip_id", "encoder", "caption_sha256"]):
        for cid, enc, sha in zip(*(t.column(c).to_pylist() for c in ("clip_id", "encoder", "caption_sha256"))):
            if enc == encoder:
                have[cid] = (sha, path)
    return have


def _carried(store: OutputStore, files: list[str], encoder: str, stale: set[str]) -> pa.Table | None:
    """The rows of ``files`` that stay: all but ``encoder``'s rows of the ``stale`` clips."""
    if not files:
        return None
    schema = load_schema(TABLE)
    tables = [read_table(store.location, f, schema.names).cast(schema) for f in files]
    t = pa.concat_tables(tables)
    gone = pc.and_(pc.equal(t["encoder"], encoder), pc.is_in(t["clip_id"], pa.array(sorted(stale), pa.string())))
    return t.filter(pc.invert(gone))


def add_text_embeddings(output: str, config: PipelineConfig) -> TextEmbeddingsResult:
    """Compute the caption embeddings ``config.text_embeddings`` asks for that ``output`` lacks or holds stale, and commit them.

    Raises:
        ConfigError: not a curate output, no text_embeddings section, a pipeline that differs in
            more than derived settings, or an encoder id already used for other embeddings.
        ModelUnavailable: the encoder or its tokenizer cannot be had (raised before any clip is read).
        LockedError: another process writes to ``output``.
    """
    from curate.models.device import pick_device, pick_precision
    from curate.models.text_encoder import encoder_info, load_text_encoder

    t0 = time.perf_counter()
    loc, doc = read_compatible(output, config, TABLE)
    cfg = config.text_embeddings
    assert cfg is not None
    info = encoder_info(cfg.encoder, config.models)  # the weights before any input: ModelUnavailable names the encoder and the fix
    if info["max_positions"] is not None and cfg.max_length > info["max_positions"]:
        raise ConfigError(f"text_embeddings.max_length {cfg.max_length} exceeds what {cfg.encoder.kind} {cfg.encoder.model} "
                          f"can encode ({info['max_positions']} positions)")
    set_info = dict(info, max_length=cfg.max_length, shape=[cfg.max_length, info["hidden_size"]], dtype=cfg.dtype)
    device = pick_device(cfg.device)
    precision = pick_precision(device, cfg.precision)
    with OutputStore.open(output, config, run_id=new_run_id(), command="latents",
                          models=models_record(doc, "text_encoder", info)) as store:
        earlier = mf.derived_section(TABLE, [], store.versions)["sets"]
        check_same_maker(f"text embeddings named {cfg.encoder.id!r}", {k: v for k, v in earlier.items() if k == cfg.encoder.id},
                         set_info, _IDENTITY, "give this encoder or these settings another text_embeddings.encoder.id")
        have = _held(store, cfg.encoder.id)
        todo, stale = [], set()
        skipped = uncaptioned = 0
        for e in store.shards.get(ACCEPTED_TABLE, []):
            for clip in read_table(loc, e["path"], ["clip_id", "video_id", "caption"]).to_pylist():
                if clip["caption"] is None:
                    uncaptioned += 1
                    continue
                held = have.get(clip["clip_id"])
                if held is not None and held[0] == caption_hash(clip["caption"]):
                    skipped += 1
                    continue
                if held is not None:
                    stale.add(clip["clip_id"])
                todo.append(clip)
        files = sorted({have[c][1] for c in stale})
        work = _Pass(store, cfg, lambda: load_text_encoder(cfg.encoder, config.models, device, precision), set_info,
                     _carried(store, files, cfg.encoder.id, stale), files, len(stale))
        for clip in todo:
            work.add(clip)
        work.commit(final=True)
    return TextEmbeddingsResult(encoder=cfg.encoder.id, computed=work.computed, replaced=len(stale), skipped=skipped,
                                uncaptioned=uncaptioned, commits=work.commits, seconds=round(time.perf_counter() - t0, 3))
