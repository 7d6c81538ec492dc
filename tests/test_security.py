"""The app as an attacker meets it: forged requests from other sites, with the headers they carry."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Route

from jobs_api import api, create
from sse import read_events


def write_routes() -> list[tuple[str, str]]:
    """Every state-changing (method, path) the app serves, so a new route cannot be forgotten."""
    from app import routes

    return sorted(
        (method, route.path)
        for route in routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"GET", "HEAD"}
    )


def test_every_state_changing_route_is_known_here():
    assert {path for _, path in write_routes()} >= {
        "/jobs", "/jobs/{job_id}/cancel", "/jobs/{job_id}/resume", "/jobs/{job_id}/delete",
        "/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/cancel", "/api/jobs/{job_id}/resume",
    }  # fmt: skip


FORGED = [
    {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "same-site"},  # another port or subdomain of the same site
    {"Sec-Fetch-Site": "cross-site"},  # a browser that leaves Origin out
    {"Origin": "https://evil.example"},  # plain http on a LAN: no Sec-Fetch-*, only Origin
    {"Origin": "null"},  # a sandboxed frame or a redirect chain
]


@pytest.mark.parametrize("headers", FORGED, ids=lambda h: " ".join(f"{k}={v}" for k, v in h.items()))
def test_cross_site_writes_are_refused_on_every_state_changing_route(app_server, client, llm, headers):
    job = create(client)["id"]
    read_events(client, job)
    origin_as_self = {"Origin": app_server.url.replace("127.0.0.1", "localhost")}
    for method, path in write_routes():
        for forged in (headers, origin_as_self):
            response = client.request(
                method, path.replace("{job_id}", job), headers=forged,
                data={"topic": "Forged", "password": "x"} if not path.startswith("/api/") else None,
                json={"topic": "Forged"} if path == "/api/jobs" else None,
            )  # fmt: skip
            assert response.status_code == 403, (method, path, forged, response.text)
            if path.startswith("/api/"):
                assert "another site" in response.json()["error"]
            else:
                assert "another site" in response.text and "<html" in response.text
    listing = client.get("/api/jobs").json()["jobs"]
    assert [j["id"] for j in listing] == [job] and api(client, job)["status"] == "done"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Sec-Fetch-Site": "same-origin", "Origin": "{url}"}, {"Sec-Fetch-Site": "none"},
     {"Origin": "{url}"}],
    ids=["curl", "same-origin", "typed", "origin only"],
)  # fmt: skip
def test_same_origin_and_plain_client_writes_still_work(app_server, client, llm, headers):
    headers = {k: v.replace("{url}", app_server.url) for k, v in headers.items()}
    created = client.post("/jobs", data={"topic": "Tide pools"}, headers=headers)
    assert created.status_code == 303, created.text
    job = created.headers["location"].rsplit("/", 1)[1]
    assert client.post(f"/api/jobs/{job}/cancel", headers=headers).status_code in (200, 409)
    assert client.delete(f"/api/jobs/{job}", headers=headers).status_code == 204


# DNS rebinding: a page whose name now points at 127.0.0.1 sends its own name as Host.


@pytest.mark.parametrize("host", ["rebind.attacker.example", "evil.example:8000", "127.0.0.1.nip.io",
                                  "[::2]", "localhost.", ""])  # fmt: skip
def test_requests_for_unknown_hosts_are_refused(client, host):
    for path in ("/", "/jobs", "/api/jobs", "/healthz", "/static/draftline.css"):
        response = client.get(path, headers={"Host": host})
        assert response.status_code == 400, (path, response.text)
        assert "Draftline" not in response.text
    refused = client.post("/api/jobs", json={"topic": "Rebound"}, headers={"Host": host})
    assert refused.status_code == 400 and client.get("/api/jobs").json()["jobs"] == []


def test_loopback_names_and_allowed_hosts_are_served(start_app, llm):
    server = start_app(DRAFTLINE_ALLOWED_HOSTS="draftline.lan, *.example.org,192.168.1.20")
    port = server.port
    with server.client() as http:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "draftline.lan",
                     "Draftline.LAN:8080", "writer.example.org", "192.168.1.20:80"):  # fmt: skip
            assert http.get("/", headers={"Host": host}).status_code == 200, host
        for host in ("example.org", "draftline.lan.attacker.example", "192.168.1.21"):
            assert http.get("/", headers={"Host": host}).status_code == 400, host


def test_links_and_redirects_never_carry_the_host_they_were_asked_for(app_server, client, llm):
    llm.token_delay = 0.02  # still running when it is cancelled
    host = {"Host": f"localhost:{app_server.port}"}  # served, yet not the name the links use
    created = client.post("/jobs", data={"topic": "Tide pools"}, headers=host)
    assert created.status_code == 303 and created.headers["location"].startswith("/jobs/")
    job = created.headers["location"].rsplit("/", 1)[1]
    api_created = client.post("/api/jobs", json={"topic": "Rock pools"}, headers=host)
    assert api_created.headers["location"] == f"/api/jobs/{api_created.json()['id']}"
    cancelled = client.post(f"/jobs/{job}/cancel", headers=host)
    assert cancelled.status_code == 303 and cancelled.headers["location"] == f"/jobs/{job}"
    resumed = client.post(f"/jobs/{job}/resume", headers=host)
    assert resumed.status_code == 303 and resumed.headers["location"] == f"/jobs/{job}"
    read_events(client, job)
    for path in ("/", "/jobs", f"/jobs/{job}", "/no-such-page"):
        page = client.get(path, headers=host).text
        links = re.findall(r'\b(?:href|src|action|sse-connect)="([^"]*)"', page)
        assert len(links) > 5 and all(re.match(r"(/(?!/)|#|data:)", link) for link in links), links
        assert "localhost" not in page, path
    deleted = client.post(f"/jobs/{job}/delete", headers=host)
    assert deleted.status_code == 303 and deleted.headers["location"] == "/jobs"
