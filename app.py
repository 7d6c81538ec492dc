"""Draftline: watch an LLM write an article, live. HTTP in, one call, one template out."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import sys

import anyio
import uvicorn
from secure.middleware import SecureASGIMiddleware
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import export, llm, local_model, security, steering, views
from .brief import (
    LENGTHS,
    MAX_AUDIENCE_LENGTH,
    MAX_LANGUAGE_LENGTH,
    MAX_TOPIC_LENGTH,
    OPTION_NAMES,
    TONES,
    BriefError,
    Options,
    clean_brief,
)  # fmt: skip
from .config import Settings, SettingsError
from .jobs import Job, Prices
from .runner import JobRunner, JobStateError, TooManyJobs
from .shared_queue import SharedQueue
from .store import StorageError, StoreInUse, check_not_in_use, open_store
from .streams import (
    ReleasedAfter,
    StreamSlots,
    TooManyStreams,
    job_events,
    parse_last_event_id,
)
from .web import back_to_job, get_job, job_json, last, read_form, read_json, render

log = logging.getLogger("draftline")

SUGGESTIONS = (
    "How sourdough starters work",
    "A beginner's guide to tide pools",
    "Why the sky is blue",
    "The history of the bicycle",
)
PAGE_SIZE = 20


async def render_form(request: Request, topic: str = "", options: dict | None = None,
                      errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    """The home page; for htmx, just the form, redrawn with each message beside its field."""
    default = Options().to_record()
    context = {"topic": topic[:MAX_TOPIC_LENGTH], "errors": errors or {}, "suggestions": SUGGESTIONS,
               "options": {**default, **(options or {})}, "default_options": default,
               "lengths": LENGTHS, "tones": TONES, "max_topic": MAX_TOPIC_LENGTH,
               "max_audience": MAX_AUDIENCE_LENGTH, "max_language": MAX_LANGUAGE_LENGTH}  # fmt: skip
    if errors and "HX-Request" in request.headers:
        response = render(request, "_form.html", status_code, **context)
        response.headers.update({"HX-Retarget": "#topic-form", "HX-Reswap": "outerHTML"})
        return response
    jobs = await request.app.state.store.list(limit=8)
    return render(request, "index.html", status_code, jobs=jobs, **context)


# HTML


async def home(request: Request) -> Response:
    return await render_form(request)


async def create_job(request: Request) -> Response:
    form = await read_form(request)
    raw = next((v for v in reversed(form.get("topic", [])) if v.strip()), "")  # a suggestion wins
    fields = {name: last(form, name) for name in OPTION_NAMES if name in form}
    try:
        job = await start_job(request, *clean_brief(raw, fields))
    except (BriefError, TooManyJobs, StorageError) as exc:
        errors = exc.errors if isinstance(exc, BriefError) else {"topic": str(exc)}
        code = 422 if isinstance(exc, BriefError) else 429 if isinstance(exc, TooManyJobs) else 503
        return await render_form(request, raw, fields, errors, status_code=code)
    return back_to_job(request, job)


async def job_page(request: Request) -> Response:
    job = await get_job(request)
    name = "_job.html" if "HX-Request" in request.headers else "job.html"
    response = render(request, name, job=job)
    response.headers["Vary"] = "HX-Request"
    return response


async def history(request: Request) -> Response:
    jobs, page, pages = await list_page(request)
    return render(request, "jobs.html", jobs=jobs, page=page, pages=pages)


async def cancel_job(request: Request) -> Response:
    job = await request.app.state.runner.cancel(await get_job(request))
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


async def resume_job(request: Request) -> Response:
    job = await get_job(request)
    job = await request.app.state.runner.resume(job, security.client_address(request))
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


async def delete_job(request: Request) -> Response:
    await request.app.state.runner.delete(await get_job(request))
    return RedirectResponse("/jobs", status_code=303)


async def job_events_stream(request: Request) -> Response:
    job = await get_job(request)
    last_event_id = parse_last_event_id(request.headers.get("last-event-id"), job)
    release = request.app.state.streams.take(security.client_address(request))  # or 429
    shutdown = anyio.Event()  # set by sse-starlette when the server begins to stop
    stream = job_events(request.app.state.store, job, last_event_id, shutdown,
                        request.app.state.runner.shutdown, request.app.state.prices)  # fmt: skip
    response = EventSourceResponse(stream, ping=15, send_timeout=30, shutdown_event=shutdown,
                                   shutdown_grace_period=5)  # fmt: skip
    return ReleasedAfter(response, release)


# The finished article as a file: Markdown as written, a standalone HTML page, a Word document.
DOWNLOADS = {
    "md": ("text/markdown; charset=utf-8", lambda job: (job.article + "\n").encode()),
    "html": ("text/html; charset=utf-8",
             lambda job: export.article_html(job.topic, job.article).encode()),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             lambda job: export.article_docx(job.topic, job.article)),
}  # fmt: skip


async def article_download(request: Request) -> Response:
    job = await get_job(request)
    if job.status != "done":
        raise HTTPException(409, "This article is not finished yet.")
    extension = request.path_params["extension"]
    if extension not in DOWNLOADS:
        raise HTTPException(404, "Articles download as .md, .html or .docx.")
    media_type, make = DOWNLOADS[extension]
    name = export.filename(job.topic, extension)
    return Response(make(job), media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


async def login_page(request: Request) -> Response:
    next_path = security.local_path(request.query_params.get("next"))
    if request.app.state.gate is None:
        return RedirectResponse(next_path, status_code=303)
    return render(request, "login.html", next=next_path)


async def login(request: Request) -> Response:
    form = await read_form(request)
    next_path = security.local_path(last(form, "next"))
    gate = request.app.state.gate
    if gate is None:
        return RedirectResponse(next_path, status_code=303)
    try:
        gate.attempt(security.client_address(request), last(form, "password").encode())
    except security.LoginRefused as exc:
        return render(request, "login.html", exc.status_code, next=next_path, error=str(exc))
    response = RedirectResponse(next_path, status_code=303)
    gate.sign_in(response, https=request.url.scheme == "https")
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/login" if request.app.state.gate else "/", status_code=303)
    response.delete_cookie(security.SESSION_COOKIE, httponly=True, samesite="lax")
    return response


# JSON API


async def api_create_job(request: Request) -> Response:
    body = await read_json(request)
    if not isinstance(body.get("topic"), str):
        raise HTTPException(422, 'Send {"topic": "..."} with the topic as a string.')
    try:
        job = await start_job(request, *clean_brief(body["topic"], body))
    except BriefError as exc:
        return JSONResponse({"error": str(exc), "errors": exc.errors}, status_code=422)
    return JSONResponse(job_json(request, job), status_code=201,
                        headers={"Location": f"/api/jobs/{job.id}"})  # fmt: skip


async def api_job(request: Request) -> Response:
    return JSONResponse(job_json(request, await get_job(request)))


async def api_jobs(request: Request) -> Response:
    jobs, page, pages = await list_page(request)
    return JSONResponse({"jobs": [job_json(request, job) for job in jobs], "page": page,
                         "pages": pages})  # fmt: skip


async def api_cancel_job(request: Request) -> Response:
    job = await request.app.state.runner.cancel(await get_job(request))
    return JSONResponse(job_json(request, job))


async def api_resume_job(request: Request) -> Response:
    job = await get_job(request)
    job = await request.app.state.runner.resume(job, security.client_address(request))
    return JSONResponse(job_json(request, job), status_code=202)


async def api_delete_job(request: Request) -> Response:
    await request.app.state.runner.delete(await get_job(request))
    return Response(status_code=204)


async def healthz(request: Request) -> Response:
    backend = request.app.state.llm.backend
    health = {"status": "ok", "backend": backend.name, "model": backend.model,
              "llm_configured": backend.configured}  # fmt: skip
    try:
        await request.app.state.store.check_writable()  # the store answers, and can save
    except StorageError as exc:
        return JSONResponse({**health, "status": "unavailable", "reason": str(exc)},
                            status_code=503)  # fmt: skip
    if backend.unavailable:  # the LLM cannot write here: say so, and why
        return JSONResponse({**health, "status": "unavailable", "reason": backend.unavailable},
                            status_code=503)  # fmt: skip
    return JSONResponse(health)


# Helpers


async def start_job(request: Request, topic: str, options: Options) -> Job:
    client = security.client_address(request)
    return await request.app.state.runner.submit(topic, client, options)


async def list_page(request: Request) -> tuple[list[Job], int, int]:
    """The jobs on page `?page=N` (newest first), clamped to the pages there are."""
    store = request.app.state.store
    pages = max(1, -(-(await store.count()) // PAGE_SIZE))
    try:
        page = min(max(1, int(request.query_params.get("page") or 1)), pages)
    except ValueError:
        page = 1
    return await store.list(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE), page, pages


TITLES = {400: "Bad request", 401: "Password needed", 403: "Refused", 404: "Not found",
          405: "Not allowed", 409: "Not possible right now", 413: "Too large",
          415: "Wrong content type", 422: "Invalid input", 429: "Too many requests",
          500: "Something went wrong", 503: "Cannot save right now"}  # fmt: skip


def error_page(request: Request, code: int, message: str) -> Response:
    """The error as a page, or as `{"error": ...}` under /api/; never a traceback."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=code)
    return render(request, "error.html", code, title=TITLES.get(code, "Error"), message=message)


ERROR_CODES = {BriefError: 422, JobStateError: 409, TooManyJobs: 429, TooManyStreams: 429,
               StorageError: 503}  # fmt: skip


async def http_error(request: Request, exc: Exception) -> Response:
    for kind, status in ERROR_CODES.items():
        if isinstance(exc, kind):
            exc = HTTPException(status, str(exc))
    code = getattr(exc, "status_code", 500)
    message = getattr(exc, "detail", "") or TITLES.get(code, "Error")
    if code == 500:
        log.exception("unhandled error on %s", request.url.path, exc_info=exc)
        message = "Something went wrong on our side. The error has been logged."
    return error_page(request, code, message)


routes = [
    Route("/", home),
    Route("/jobs", history, name="history"),
    Route("/jobs", create_job, methods=["POST"]),
    Route("/jobs/{job_id}", job_page, name="job_page"),
    Route("/jobs/{job_id}/events", job_events_stream),
    Route("/jobs/{job_id}/article.{extension}", article_download),
    Route("/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/jobs/{job_id}/resume", resume_job, methods=["POST"]),
    Route("/jobs/{job_id}/delete", delete_job, methods=["POST"]),
    Route("/api/jobs", api_jobs),
    Route("/api/jobs", api_create_job, methods=["POST"]),
    Route("/api/jobs/{job_id}", api_job, name="api_job"),
    Route("/api/jobs/{job_id}", api_delete_job, methods=["DELETE"]),
    Route("/api/jobs/{job_id}/cancel", api_cancel_job, methods=["POST"]),
    Route("/api/jobs/{job_id}/resume", api_resume_job, methods=["POST"]),
    *steering.routes,
    Route("/healthz", healthz),
    Route("/login", login_page),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Mount("/static", StaticFiles(directory=views.TEMPLATES.parent / "static"), name="static"),
]

exception_handlers = {HTTPException: http_error, **dict.fromkeys(ERROR_CODES, http_error),
                      Exception: http_error}  # fmt: skip


_serving = 0  # apps in this process inside fewer_collections (tests run several)
_threshold_before: tuple[int, int, int] = gc.get_threshold()


@contextlib.contextmanager
def fewer_collections():
    """While an app serves, Python's cyclic collector runs less often and never walks what
    startup built. Measured with bench/load.py (100 jobs, 1,000 viewers): the default
    thresholds spent 2.2 s of a 10 s run collecting, in pauses of up to 0.35 s that every
    viewer and page waited out; with these, 0.2 s and at most 0.06 s."""
    global _serving, _threshold_before
    if not _serving:
        _threshold_before = gc.get_threshold()
        gc.freeze()  # modules, templates, settings: alive until the process ends
        gc.set_threshold(50_000, 20, 10)  # the defaults are 700, 10, 10
    _serving += 1
    try:
        yield
    finally:
        _serving -= 1
        if not _serving:
            gc.set_threshold(*_threshold_before)
            gc.unfreeze()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    settings = app.state.settings
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
    for chatty in ("httpx", "httpx2", "openai"):  # one INFO line per LLM request is noise
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    # Under plain `uvicorn`, its access log follows its own --log-level (INFO by default): a
    # line per request, 6 % of the app's CPU while a thousand viewers connect.
    logging.getLogger("uvicorn.access").setLevel(settings.log_level.upper())
    views.compile_templates()
    app.state.llm = llm.LLM(settings)
    # The embedded default when no OPENAI_* is set: it points the LLM at its server.
    local = await local_model.start(settings, app.state.llm.use)
    app.state.llm.prepare()
    app.state.store = open_store(settings.store_url)
    # Sharing Redis, jobs wait in one line for every process: whichever has a slot runs them.
    shared = SharedQueue(settings.store_url, settings.max_running_jobs) if (
        settings.store_is_shared) else None  # fmt: skip
    app.state.runner = JobRunner(app.state.store, settings, app.state.llm, shared)
    await app.state.runner.start()
    app.state.streams = StreamSlots(settings.max_streams_per_client, settings.max_streams)
    with fewer_collections():
        yield
    await app.state.runner.shutdown()
    if local is not None:
        await local.stop()
    await app.state.llm.aclose()
    await app.state.store.close()


def create_app(settings: Settings | None = None) -> Starlette:
    """The app for `settings` (by default, the environment's); nothing is read at import."""
    if settings is None:
        settings = Settings.from_env()
    gate = security.Gate(settings.password) if settings.password else None
    middleware = [
        Middleware(SecureASGIMiddleware, secure=security.HEADERS),  # on every response, 400s too
        Middleware(TrustedHostMiddleware, allowed_hosts=security.allowed_hosts(settings),
                   www_redirect=False),  # fmt: skip
        # Pages and htmx shrink to a third; GZipMiddleware leaves text/event-stream alone.
        Middleware(GZipMiddleware, minimum_size=500),
        Middleware(security.CrossSiteWrites, error_page=error_page),
        Middleware(security.RequirePassword, gate=gate, error_page=error_page),
    ]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=exception_handlers,
                    lifespan=lifespan)  # fmt: skip
    app.state.settings, app.state.gate = settings, gate
    app.state.prices = Prices(settings.price_per_1k_input, settings.price_per_1k_output)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="draftline", description="Watch an LLM write an article, live in your browser. "
        "Settings come from the environment (README: Settings).")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="app processes to start (more than 1 needs DRAFTLINE_STORE=redis://)")
    workers = parser.parse_args(argv).workers
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"draftline: not starting. {exc}")
    if refusal := security.refuse_to_start(settings) or refuse_workers(settings, workers):
        sys.exit(f"draftline: not starting. {refusal}")
    # uvicorn builds the app with create_app(), which reads the same environment.
    # Idle keep-alive connections close after 5 s, half-sent requests after DRAFTLINE_READ_TIMEOUT,
    # and headers past 16 KiB get 400.
    uvicorn.run("draftline.app:create_app", factory=True, host=settings.host, port=settings.port,
                log_level=settings.log_level, workers=workers,
                timeout_graceful_shutdown=10, timeout_keep_alive=5,
                http=security.DeadlineH11Protocol,
                h11_max_incomplete_event_size=16 * 1024)  # fmt: skip


def refuse_workers(settings: Settings, workers: int) -> str | None:
    """Why these workers cannot start: too few, more than one on SQLite (its queue and running
    slots are one process's memory), or a SQLite file another process already serves."""
    if workers < 1:
        return "--workers must be at least 1."
    if settings.store_is_shared:
        return None
    if workers > 1:
        return (f"--workers {workers} needs a store that several processes can share: set "
                "DRAFTLINE_STORE=redis://host:6379/0 (README: More than one process). The SQLite "
                "store serves one process.")  # fmt: skip
    try:
        check_not_in_use(settings.store_url)
    except StoreInUse as exc:
        return str(exc)
    return None
