"""The review web app (FastAPI on uvicorn): the page, the queue API, clip bytes with HTTP ranges.

Every request names clips by id; ids are checked against the committed index
(:class:`~curate.review.clips.ClipSource`), never used as paths. When an access
token is set (required for any non-loopback bind) every request must carry it:
``Authorization: Bearer TOKEN``, or the ``curate_review_token`` cookie that
opening ``/?token=TOKEN`` once sets. Bad requests get a 4xx with a one-line
``detail``; an unexpected error a bare 500 (the traceback goes to the server log only).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import unicodedata
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Engine

from curate.review import sampling
from curate.review.clips import SCORES, ClipSource, UnknownClip, parse_range
from curate.review.queue import NothingToUndo, Queue, StaleLease
from curate.review.settings import ReviewConfig

log = logging.getLogger(__name__)
TOKEN_COOKIE = "curate_review_token"
MAX_CAPTION = 2000


def _no_control(v: str) -> str:
    v = unicodedata.normalize("NFC", v)
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in v):
        raise ValueError("must not contain control characters or unassigned code points")
    return v


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), AfterValidator(_no_control)]
Caption = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CAPTION), AfterValidator(_no_control)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), AfterValidator(_no_control)]
ClipId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8,64}$")]
Token = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{1,64}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeaseBody(_Body):
    annotator: Name
    n: int = Field(1, ge=1, le=64)
    reason: Reason | None = None  # only clips flagged for this reason key
    video: Annotated[str, StringConstraints(max_length=300)] | None = None  # video id or end of the source URI
    scores: dict[Annotated[str, StringConstraints(max_length=40)], tuple[float | None, float | None]] = Field(default_factory=dict)


class DecideBody(_Body):
    annotator: Name
    clip_id: ClipId
    token: Token
    decision: Literal["approve", "reject", "skip"]
    reason: Reason | None = None
    caption: Caption | None = None  # the caption as the annotator left it


class ManyItem(_Body):
    clip_id: ClipId
    token: Token


class DecideManyBody(_Body):
    annotator: Name
    decision: Literal["approve", "reject", "skip"]
    reason: Reason | None = None
    clips: list[ManyItem] = Field(min_length=1, max_length=256)


class AnnotatorBody(_Body):
    annotator: Name


class RenewBody(_Body):
    annotator: Name
    clip_id: ClipId
    token: Token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(output: str, engine: Engine, cfg: ReviewConfig | None = None, token: str | None = None) -> FastAPI:
    """The app for ``output`` with decisions in ``engine`` (already migrated)."""
    cfg = cfg or ReviewConfig()
    source = ClipSource(output)
    queue = Queue(engine, cfg.lease_s)
    sampling.sync(engine, source, cfg)
    app = FastAPI(title="curate review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.source, app.state.queue, app.state.cfg = source, queue, cfg
    static = resources.files("curate.review") / "static"

    @app.middleware("http")
    async def _auth(request: Request, call_next):  # noqa: ANN202
        if token is None:
            return await call_next(request)
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip() or request.cookies.get(TOKEN_COOKIE, "")
        query = request.query_params.get("token")
        if query and hmac.compare_digest(query, token):
            response = await call_next(request)
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
            return response
        if not given or not hmac.compare_digest(given, token):
            return JSONResponse({"detail": "access token required: open the link with ?token=… the lead gave you"}, status_code=401)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        msgs = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            msgs.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return JSONResponse({"detail": "; ".join(msgs) or "malformed request"}, status_code=422)

    @app.exception_handler(UnknownClip)
    async def _unknown(_request: Request, exc: UnknownClip) -> JSONResponse:
        return JSONResponse({"detail": f"no committed clip has id {exc.args[0]!r}"[:200]}, status_code=404)

    @app.exception_handler(StaleLease)
    async def _stale(_request: Request, exc: StaleLease) -> JSONResponse:
        return JSONResponse({"detail": f"clip {exc.args[0]} is not leased to you (the lease expired and was taken, "
                                       "or it was decided); take the next clip"}, status_code=409)

    @app.exception_handler(NothingToUndo)
    async def _nothing(_request: Request, exc: NothingToUndo) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("review server error", exc_info=exc)
        return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)

    def _fresh() -> None:
        if source.refresh():
            sampling.sync(engine, source, cfg)

    def _clip(lease: Any) -> dict[str, Any]:
        return {"clip_id": lease.clip_id, "token": lease.token, "expires_at": lease.expires_at, "info": source.describe(lease.clip_id)}

    # -- page --------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return Response((static / "index.html").read_bytes(), media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    # -- API ---------------------------------------------------------------------------------

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        facets = queue.facets()
        return {"reject_reasons": cfg.reject_reasons, "lease_s": cfg.lease_s, "output": source.output.rstrip("/").rsplit("/", 1)[-1],
                "thresholds": source.thresholds(), "filter_reasons": facets["reasons"],
                "videos": [u.rsplit("/", 1)[-1] for u in facets["videos"]], "scores": SCORES}

    @app.get("/api/counts")
    def counts(annotator: Annotated[str, StringConstraints(max_length=64)] | None = None) -> dict[str, int]:
        return queue.counts(annotator)

    @app.post("/api/lease")
    def lease(body: LeaseBody) -> dict[str, Any]:
        _fresh()

        def ok(cid: str) -> bool:
            row = source.rows.get(cid)
            if row is None:
                return False
            for name, (lo, hi) in body.scores.items():
                v = row.get(name)
                if v is None or (lo is not None and v < lo) or (hi is not None and v > hi):
                    return False
            return True

        got = queue.lease(body.annotator, body.n, body.reason or None, body.video or None, ok if body.scores else
                          (lambda c: c in source.rows))
        source.warm([x.clip_id for x in got])
        return {"clips": [_clip(x) for x in got], "counts": queue.counts(body.annotator)}

    @app.post("/api/renew")
    def renew(body: RenewBody) -> dict[str, float]:
        return {"expires_at": queue.renew(body.annotator, body.clip_id, body.token)}

    @app.post("/api/decide")
    def decide(body: DecideBody) -> dict[str, Any]:
        row = source.row(body.clip_id)
        old = row.get("caption") or ""
        new = body.caption if body.caption is not None and body.caption != old.strip() else None
        if body.decision == "reject" and not body.reason:
            body.reason = "rejected"
        did = queue.decide(body.annotator, body.clip_id, body.token, body.decision,
                           reason=body.reason if body.decision == "reject" else None, old_caption=old,
                           new_caption=new if body.decision != "skip" else None, shard_version=source.version)
        return {"id": did, "counts": queue.counts(body.annotator)}

    @app.post("/api/decide_many")
    def decide_many(body: DecideManyBody) -> dict[str, Any]:
        done, stale = [], []
        for item in body.clips:
            try:
                row = source.row(item.clip_id)
                queue.decide(body.annotator, item.clip_id, item.token, body.decision,
                             reason=(body.reason or "rejected") if body.decision == "reject" else None,
                             old_caption=row.get("caption") or "", shard_version=source.version)
                done.append(item.clip_id)
            except (StaleLease, UnknownClip):
                stale.append(item.clip_id)
        return {"done": done, "stale": stale, "counts": queue.counts(body.annotator)}

    @app.post("/api/undo")
    def undo(body: AnnotatorBody) -> dict[str, Any]:
        return {"clip": _clip(queue.undo(body.annotator)), "counts": queue.counts(body.annotator)}

    @app.get("/api/clips/{clip_id}")
    def clip_info(clip_id: str) -> dict[str, Any]:
        return source.describe(clip_id)

    @app.get("/api/clips/{clip_id}/thumb.jpg")
    def thumb(clip_id: str) -> Response:
        return Response(source.thumbnail(clip_id), media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/api/clips/{clip_id}/video.mp4")
    def video(clip_id: str, request: Request) -> Response:
        data = source.video(clip_id)
        size = len(data)
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
        try:
            r = parse_range(request.headers.get("range"), size)
        except ValueError:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}", **headers})
        if r is None:
            return Response(data, media_type="video/mp4", headers=headers)
        start, end = r
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(data[start:end + 1], status_code=206, media_type="video/mp4", headers=headers)

    return app


