"""HTTP for steering an article: review its outline, write one section again, edit it by hand,
go back to an earlier version. Each action is a plain form (it works without JavaScript) that
htmx enhances, and a JSON route under /api/.

Handlers parse input, make one call to the runner, and answer; the runner checks that the action
fits the job's state (409 otherwise) and keeps every change as a stored fact. The edit form checks
the state first too, to give its page back with the person's text rather than an error page.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import security
from .brief import (
    MAX_TITLES, BriefError, clean_article, clean_instruction, clean_titles,
)  # fmt: skip
from .jobs import Job
from .web import back_to_job, get_job, job_json, last, read_form, read_json, render

# An edited article is one field, which may be long: a form urlencodes it to up to three times
# its size.
ARTICLE_BODY_BYTES = 1024 * 1024
OUTLINE_ACTIONS = ("rename", "remove", "add", "up", "down")


def runner(request: Request):
    return request.app.state.runner


def client(request: Request) -> str:
    return security.client_address(request)


def section_index(request: Request, job: Job) -> int:
    """The `{n}` of a section's URL (1-based, as people count), as a list index."""
    try:
        index = int(request.path_params["n"]) - 1
    except ValueError:
        index = -1
    if not 0 <= index < len(job.sections):
        raise HTTPException(404, f"This article has no section {request.path_params['n']}.")
    return index


async def version_number(request: Request, job: Job) -> int:
    """The `{v}` of a version's URL, if the job has that version: 404 otherwise, as for an
    unknown section (a version that is not there is a missing thing, not the job's state)."""
    try:
        n = int(request.path_params["v"])
    except ValueError:
        n = None
    if n is None or n not in {v.n for v in await request.app.state.store.versions(job.id)}:
        raise HTTPException(404, f"This article has no version {request.path_params['v']}.")
    return n


def edited_outline(job: Job, form: dict[str, list[str]]) -> list[str]:
    """The outline after one change from the review form: rename, remove, add, move up or down."""
    titles = list(job.outline or [])
    action = last(form, "action")
    if action not in OUTLINE_ACTIONS:
        raise HTTPException(400, f"Choose what to do: {', '.join(OUTLINE_ACTIONS)}.")
    if action == "add":
        return [*titles, last(form, "title")]
    try:
        index = int(last(form, "index"))
    except ValueError:
        index = -1
    if not 0 <= index < len(titles):
        raise HTTPException(400, "That section is not in the outline.")
    if action == "rename":
        titles[index] = last(form, "title")
    elif action == "remove":
        del titles[index]
    else:
        other = index - 1 if action == "up" else index + 1
        if 0 <= other < len(titles):
            titles[index], titles[other] = titles[other], titles[index]
    return titles


def focus_after(form: dict[str, list[str]], titles: list[str], failed: bool = False) -> str:
    """The id of the control a person is on once the outline is redrawn, so that a keyboard
    or a screen reader keeps its place: the field that was refused, the moved section's button,
    the button of the section that took a removed one's place. Renaming and adding keep the
    control the person used (htmx puts focus back on the same id)."""
    action, index, count = last(form, "action"), last(form, "index"), len(titles)
    index = int(index) if index.isdigit() else -1
    if failed:
        return "new-title" if action == "add" else f"title-{index}"
    if action in ("up", "down"):
        moved = index - 1 if action == "up" else index + 1  # where the section is now
        if not 0 <= moved < count:
            return ""
        further = moved > 0 if action == "up" else moved < count - 1  # or its button is off
        return f"{action if further else {'up': 'down', 'down': 'up'}[action]}-{moved}"
    if action == "remove" and count:
        return f"remove-{min(index, count - 1)}" if count > 1 else "title-0"
    return ""


# HTML forms


async def change_outline(request: Request) -> Response:
    job = await get_job(request)
    form = await read_form(request)
    try:
        job = await runner(request).set_outline(job, clean_titles(edited_outline(job, form)))
    except BriefError as exc:
        focus = focus_after(form, job.outline or [], failed=True)
        return render_outline(request, job, str(exc), focus, status_code=422)
    if "HX-Request" in request.headers:
        return render_outline(request, job, focus=focus_after(form, job.outline))
    return back_to_job(request, job)


def render_outline(request: Request, job: Job, error: str = "", focus: str = "",
                   status_code: int = 200) -> Response:  # fmt: skip
    """The outline under review, redrawn (htmx), or the job page with the error beside it."""
    name = "_sections.html" if "HX-Request" in request.headers else "job.html"
    return render(request, name, status_code, job=job, outline_error=error, focus=focus,
                  max_titles=MAX_TITLES)  # fmt: skip


async def replan_outline(request: Request) -> Response:
    job = await get_job(request)
    instruction = clean_instruction(last(await read_form(request), "instruction"))
    return back_to_job(request, await runner(request).rewrite_outline(job, instruction,
                                                                      client(request)))


async def write_job(request: Request) -> Response:
    job = await get_job(request)
    return back_to_job(request, await runner(request).write(job, client(request)))


async def rewrite_section(request: Request) -> Response:
    job = await get_job(request)
    index = section_index(request, job)
    instruction = clean_instruction(last(await read_form(request), "instruction"))
    job = await runner(request).rewrite_section(job, index, instruction, client(request))
    return back_to_job(request, job)


async def restore_section(request: Request) -> Response:
    job = await get_job(request)
    index = section_index(request, job)
    return back_to_job(request, await runner(request).restore_section(job, index))


async def edit_page(request: Request) -> Response:
    job = await get_job(request)
    return render(request, "edit.html", job=job, article=job.article)


async def save_article(request: Request) -> Response:
    job = await get_job(request)
    text = last(await read_form(request, ARTICLE_BODY_BYTES), "article")
    try:
        article = clean_article(text)
    except BriefError as exc:
        return edit_refused(request, job, text, str(exc), 422)
    if job.status != "done":  # a section is being written again: keep what the person typed
        return edit_refused(request, job, text, "The article is being written again. Your text "
                            "is kept here: save it once the article is done.", 409)  # fmt: skip
    await runner(request).edit_article(job, article)
    return back_to_job(request, job)


def edit_refused(request: Request, job: Job, text: str, error: str, status: int) -> Response:
    """The edit page again, with the text as typed and why it was not saved above it."""
    return render(request, "edit.html", status, job=job, article=text, error=error,
                  invalid=status == 422)  # fmt: skip


async def versions_page(request: Request) -> Response:
    job = await get_job(request)
    versions = await request.app.state.store.versions(job.id)
    return render(request, "versions.html", job=job, versions=versions)


async def restore_version(request: Request) -> Response:
    job = await get_job(request)
    await runner(request).restore_version(job, await version_number(request, job))
    return back_to_job(request, job)


# JSON API


async def api_set_outline(request: Request) -> Response:
    job = await get_job(request)
    titles = clean_titles((await read_json(request)).get("titles"))
    return JSONResponse(job_json(request, await runner(request).set_outline(job, titles)))


async def api_replan_outline(request: Request) -> Response:
    job = await get_job(request)
    instruction = clean_instruction((await read_json(request)).get("instruction"))
    job = await runner(request).rewrite_outline(job, instruction, client(request))
    return JSONResponse(job_json(request, job), status_code=202)


async def api_write(request: Request) -> Response:
    job = await runner(request).write(await get_job(request), client(request))
    return JSONResponse(job_json(request, job), status_code=202)


async def api_rewrite_section(request: Request) -> Response:
    job = await get_job(request)
    index = section_index(request, job)
    instruction = clean_instruction((await read_json(request)).get("instruction"))
    job = await runner(request).rewrite_section(job, index, instruction, client(request))
    return JSONResponse(job_json(request, job), status_code=202)


async def api_restore_section(request: Request) -> Response:
    job = await get_job(request)
    job = await runner(request).restore_section(job, section_index(request, job))
    return JSONResponse(job_json(request, job))


async def api_save_article(request: Request) -> Response:
    job = await get_job(request)
    article = clean_article((await read_json(request, ARTICLE_BODY_BYTES)).get("article"))
    return JSONResponse(job_json(request, await runner(request).edit_article(job, article)))


async def api_versions(request: Request) -> Response:
    job = await get_job(request)
    versions = await request.app.state.store.versions(job.id)
    return JSONResponse({"versions": [version.to_api() for version in versions]})


async def api_restore_version(request: Request) -> Response:
    job = await get_job(request)
    job = await runner(request).restore_version(job, await version_number(request, job))
    return JSONResponse(job_json(request, job))


routes = [
    Route("/jobs/{job_id}/outline", change_outline, methods=["POST"]),
    Route("/jobs/{job_id}/outline/regenerate", replan_outline, methods=["POST"]),
    Route("/jobs/{job_id}/write", write_job, methods=["POST"]),
    Route("/jobs/{job_id}/sections/{n}/regenerate", rewrite_section, methods=["POST"]),
    Route("/jobs/{job_id}/sections/{n}/restore", restore_section, methods=["POST"]),
    Route("/jobs/{job_id}/edit", edit_page),
    Route("/jobs/{job_id}/article", save_article, methods=["POST"]),
    Route("/jobs/{job_id}/versions", versions_page),
    Route("/jobs/{job_id}/versions/{v}/restore", restore_version, methods=["POST"]),
    Route("/api/jobs/{job_id}/outline", api_set_outline, methods=["PUT"]),
    Route("/api/jobs/{job_id}/outline/regenerate", api_replan_outline, methods=["POST"]),
    Route("/api/jobs/{job_id}/write", api_write, methods=["POST"]),
    Route("/api/jobs/{job_id}/sections/{n}/regenerate", api_rewrite_section, methods=["POST"]),
    Route("/api/jobs/{job_id}/sections/{n}/restore", api_restore_section, methods=["POST"]),
    Route("/api/jobs/{job_id}/article", api_save_article, methods=["PUT"]),
    Route("/api/jobs/{job_id}/versions", api_versions),
    Route("/api/jobs/{job_id}/versions/{v}/restore", api_restore_version, methods=["POST"]),
]
