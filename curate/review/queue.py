"""Leases and decisions: who reviews which clip, and what they decided.

A clip is leased to one annotator at a time (``leases`` has the clip id as key,
so two servers or threads can never both insert it); a lease not used within
``lease_s`` may be taken over by the next annotator who asks. A decision is
accepted only with the lease's token, and deleting the lease and appending the
decision are one transaction, committed before the server answers.

The queue: items whose effective decisions (approve/reject, not undone) are
fewer than ``needed`` (2 for a double review), that this annotator has not
decided, and that nobody else holds. Clips the annotator skipped come last.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import Engine, case, delete, distinct, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from curate.review.db import decisions, items, leases


class StaleLease(Exception):
    """The clip is not leased to this annotator with this token (expired and taken, decided, or never leased)."""


class NothingToUndo(Exception):
    """The annotator has no decision left to undo (or the clip is now someone else's)."""


@dataclass(frozen=True)
class Lease:
    clip_id: str
    token: str
    expires_at: float


def _undone():
    return select(decisions.c.undoes).where(decisions.c.undoes.is_not(None))


def effective():
    """Decisions that count: approve or reject, not undone."""
    return select(decisions).where(decisions.c.decision.in_(("approve", "reject")), decisions.c.id.not_in(_undone()))


class _Taken(Exception):
    pass


class Queue:
    def __init__(self, engine: Engine, lease_s: float = 300.0) -> None:
        self.engine = engine
        self.lease_s = lease_s

    # -- leasing ---------------------------------------------------------------------------------

    def _candidates(self, annotator: str, now: float, limit: int, reason: str | None, video: str | None,
                    with_skipped: bool) -> list[str]:
        # Correlated NOT EXISTS / counts on indexed columns: the scan walks items in queue order and stops at
        # ``limit``, so a lease costs milliseconds with tens of thousands of items and decisions.
        d, u = decisions.alias("d"), decisions.alias("u")
        not_undone = ~exists().where(u.c.undoes == d.c.id)
        reviews = (select(func.count(distinct(d.c.annotator))).where(d.c.clip_id == items.c.clip_id,
                   d.c.decision.in_(("approve", "reject")), not_undone).scalar_subquery())
        q = (select(items.c.clip_id)
             .where(reviews < items.c.needed)
             .where(~exists().where(leases.c.clip_id == items.c.clip_id, leases.c.expires_at >= now))
             .where(~exists().where(d.c.clip_id == items.c.clip_id, d.c.annotator == annotator,
                                    d.c.decision.in_(("approve", "reject")), not_undone)))
        if not with_skipped:
            q = q.where(~exists().where(d.c.clip_id == items.c.clip_id, d.c.annotator == annotator,
                                        d.c.decision == "skip", not_undone))
        if reason:
            q = q.where(items.c.flag_reasons.contains(reason, autoescape=True))
        if video:
            q = q.where(or_(items.c.video_id == video, items.c.source_uri.endswith(video, autoescape=True)))
        with self.engine.connect() as conn:
            return list(conn.execute(q.order_by(items.c.order_key).limit(limit)).scalars())

    def held(self, annotator: str) -> list[Lease]:
        now = time.time()
        with self.engine.connect() as conn:
            rows = conn.execute(select(leases).where(leases.c.annotator == annotator, leases.c.expires_at >= now)
                                .order_by(leases.c.expires_at)).all()
        return [Lease(r.clip_id, r.token, r.expires_at) for r in rows]

    def lease(self, annotator: str, n: int = 1, reason: str | None = None, video: str | None = None,
              accept: Callable[[str], bool] | None = None) -> list[Lease]:
        """Up to ``n`` clips for ``annotator``: those it already holds first, then new leases."""
        got = self.held(annotator)[:n]
        for with_skipped in (False, True):
            tried: set[str] = set()
            while len(got) < n:
                now = time.time()
                cands = [c for c in self._candidates(annotator, now, 4 * n + 16, reason, video, with_skipped)
                         if c not in tried and (accept is None or accept(c))]
                if not cands:
                    break
                for cid in cands:
                    tried.add(cid)
                    lease = self._try(annotator, cid)
                    if lease is not None:
                        got.append(lease)
                        if len(got) >= n:
                            break
            if got:
                break
        return got

    def _try(self, annotator: str, clip_id: str) -> Lease | None:
        now = time.time()
        lease = Lease(clip_id, secrets.token_hex(8), now + self.lease_s)
        values = dict(annotator=annotator, token=lease.token, expires_at=lease.expires_at)
        try:
            with self.engine.begin() as conn:
                took = conn.execute(update(leases).where(leases.c.clip_id == clip_id, leases.c.expires_at < now)
                                    .values(**values)).rowcount
                if took != 1:
                    conn.execute(insert(leases).values(clip_id=clip_id, **values))
                # Re-check inside the transaction: a decision committed since the candidates were read wins.
                eff = effective().subquery()
                n = conn.execute(select(func.count(distinct(eff.c.annotator))).where(eff.c.clip_id == clip_id)).scalar_one()
                mine = conn.execute(select(func.count()).select_from(eff).where(eff.c.clip_id == clip_id,
                                                                                 eff.c.annotator == annotator)).scalar_one()
                needed = conn.execute(select(items.c.needed).where(items.c.clip_id == clip_id)).scalar_one()
                if n >= needed or mine:
                    raise _Taken
        except (IntegrityError, _Taken):
            return None
        return lease

    def renew(self, annotator: str, clip_id: str, token: str) -> float:
        expires = time.time() + self.lease_s
        with self.engine.begin() as conn:
            n = conn.execute(update(leases).where(leases.c.clip_id == clip_id, leases.c.annotator == annotator,
                                                  leases.c.token == token).values(expires_at=expires)).rowcount
        if n != 1:
            raise StaleLease(clip_id)
        return expires

    # -- deciding --------------------------------------------------------------------------------

    def decide(self, annotator: str, clip_id: str, token: str, decision: str, *, reason: str | None = None,
               old_caption: str | None = None, new_caption: str | None = None, shard_version: int | None = None,
               origin: str = "web") -> int:
        """Record ``decision`` (approve, reject or skip) on a leased clip; returns the decision's id.

        Raises:
            StaleLease: the lease is not this annotator's (any more); nothing was recorded.
        """
        assert decision in ("approve", "reject", "skip")
        with self.engine.begin() as conn:
            gone = conn.execute(delete(leases).where(leases.c.clip_id == clip_id, leases.c.annotator == annotator,
                                                     leases.c.token == token)).rowcount
            if gone != 1:
                raise StaleLease(clip_id)
            return conn.execute(insert(decisions).values(
                clip_id=clip_id, annotator=annotator, decided_at=time.time(), decision=decision, reason=reason,
                old_caption=old_caption, new_caption=new_caption, shard_version=shard_version, origin=origin,
            )).inserted_primary_key[0]

    def record(self, rows: list[dict[str, Any]]) -> int:
        """Append decisions that come from elsewhere (an import); no lease involved."""
        with self.engine.begin() as conn:
            if rows:
                conn.execute(insert(decisions), rows)
        return len(rows)

    def undo(self, annotator: str) -> Lease:
        """Take back ``annotator``'s last decision and lease its clip to them again.

        Raises:
            NothingToUndo: no decision left, or someone else holds the clip now.
        """
        now = time.time()
        with self.engine.begin() as conn:
            last = conn.execute(select(decisions).where(decisions.c.annotator == annotator,
                                                        decisions.c.decision != "undo", decisions.c.id.not_in(_undone()))
                                .order_by(decisions.c.id.desc()).limit(1)).first()
            if last is None:
                raise NothingToUndo("nothing to undo")
            holder = conn.execute(select(leases).where(leases.c.clip_id == last.clip_id)).first()
            if holder is not None and holder.annotator != annotator and holder.expires_at >= now:
                raise NothingToUndo(f"{holder.annotator} is reviewing that clip now")
            conn.execute(insert(decisions).values(clip_id=last.clip_id, annotator=annotator, decided_at=now,
                                                  decision="undo", undoes=last.id, origin="web"))
            lease = Lease(last.clip_id, secrets.token_hex(8), now + self.lease_s)
            conn.execute(delete(leases).where(leases.c.clip_id == last.clip_id))
            conn.execute(insert(leases).values(clip_id=lease.clip_id, annotator=annotator, token=lease.token,
                                               expires_at=lease.expires_at))
        return lease

    # -- reading ---------------------------------------------------------------------------------

    def counts(self, annotator: str | None = None) -> dict[str, int]:
        """``total`` reviews wanted (items x needed), ``done``, ``left``, ``leased`` now, this annotator's ``mine``."""
        now = time.time()
        eff = effective().subquery()
        per = select(eff.c.clip_id, func.count(distinct(eff.c.annotator)).label("n")).group_by(eff.c.clip_id).subquery()
        with self.engine.connect() as conn:
            total = conn.execute(select(func.coalesce(func.sum(items.c.needed), 0))).scalar_one()
            done = conn.execute(select(func.coalesce(func.sum(case((per.c.n < items.c.needed, per.c.n), else_=items.c.needed)), 0))
                                .select_from(per.join(items, items.c.clip_id == per.c.clip_id))).scalar_one()
            leased = conn.execute(select(func.count()).select_from(leases).where(leases.c.expires_at >= now)).scalar_one()
            mine = conn.execute(select(func.count()).select_from(eff).where(eff.c.annotator == annotator)).scalar_one() if annotator else 0
        done = min(int(done), int(total))
        return {"total": int(total), "done": done, "left": int(total) - done, "leased": int(leased), "mine": int(mine)}

    def effective_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(effective().order_by(decisions.c.id))]

    def history(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(decisions).order_by(decisions.c.id))]

    def facets(self) -> dict[str, list[str]]:
        """What the queue can be filtered by: flag reason keys and source URIs."""
        with self.engine.connect() as conn:
            flags = conn.execute(select(items.c.flag_reasons).distinct()).scalars().all()
            uris = conn.execute(select(items.c.source_uri).distinct().order_by(items.c.source_uri)).scalars().all()
        return {"reasons": sorted({k for f in flags for k in f.split()}), "videos": list(uris)}

    def items(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {r.clip_id: dict(r._mapping) for r in conn.execute(select(items))}

