"""What any request meets before a route: the body cap (413 before authentication reads a byte),
security headers on every page, dates out of range answered 422 (never 500); dashboard sessions
end on the server at sign-out, and a sign-in form posted from another site is refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engine.entrypoints.http_edge import MAX_BODY
from tests.e2e.test_api import Api
from tests.helpers import young_pro


def test_an_unauthenticated_oversized_body_is_refused_before_anything_reads_it(api: Api) -> None:
    declared = api.call("POST", "/leads", None, content=b"x" * (MAX_BODY + 1))
    assert declared.status_code == 413 and declared.headers["content-type"] == "application/problem+json"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"[" + b" " * 65534 + b"]"

    streamed = api.call("POST", "/leads", None, content=chunks())
    assert streamed.status_code == 413
    assert api.call("POST", "/leads", None, json=[]).status_code == 401  # small: authentication decides
    assert api.call("POST", "/leads", "integrator", json=[{"source_channel": "web_form"}]).status_code == 200


def test_every_page_and_document_refuses_to_be_framed(api: Api) -> None:
    engine = api.engine
    [out] = engine.leads.capture_leads([young_pro(1)])
    assert out.lead_id is not None
    unsubscribe = engine.deliveries.unsubscribe_url(out.lead_id, "email").split("/unsubscribe", 1)[1]
    confirm = engine.deliveries.confirm_url(out.lead_id, "email").split("/confirm", 1)[1]
    for path in (f"/unsubscribe{unsubscribe}", f"/confirm{confirm}", "/r/ABCD-EFGH", "/dashboard/sign-in", "/health"):
        r = api.client.get(path)
        assert r.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert r.headers["referrer-policy"] == "same-origin"  # a link's token never leaks to another site


@pytest.mark.parametrize(
    "query", ["as_of=0001-01-01", "as_of=9999-12-31T23:59:59", "since=0001-01-01", "until=9999-12-31"]
)
def test_dates_out_of_range_are_a_clear_422_on_every_report(api: Api, query: str) -> None:
    for name in ("funnel", "journeys", "attribution", "costs", "experiments", "daily", "scores", "flows", "tasks"):
        r = api.call("GET", f"/reports/{name}?{query}", "marketer")
        assert r.status_code == 422, (name, query, r.text)
        assert "out of range (1970-01-02 to 2199-12-31)" in r.json()["detail"]


def signed_in(api: Api, role: str = "marketer") -> Any:
    r = api.client.post(
        "/dashboard/sign-in",
        data={"key": api.keys[role]},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return r.cookies


def test_the_dashboard_refuses_dates_out_of_range_on_the_page_and_in_csv(api: Api) -> None:
    cookies = signed_in(api)
    api.client.cookies = cookies
    page = api.client.get("/dashboard?until=9999-12-31")
    assert page.status_code == 200 and "out of range" in page.text
    csv = api.client.get("/dashboard/csv/costs?until=9999-12-31")
    assert csv.status_code == 400 and "out of range" in csv.text
    data = api.client.get("/dashboard/data.json?since=0001-01-01")
    assert data.status_code == 400 and "out of range" in data.json()["title"]


def test_a_sign_in_posted_from_another_site_is_refused(api: Api) -> None:
    for origin in ({}, {"Origin": "https://evil.example"}, {"Origin": "null"}, {"Referer": "https://evil.example/x"}):
        r = api.client.post(
            "/dashboard/sign-in", data={"key": api.keys["marketer"]}, headers=origin, follow_redirects=False
        )
        assert r.status_code == 403 and "huoke_session" not in r.cookies, origin
    assert signed_in(api)  # from huoke's own page


def test_signing_out_ends_the_session_on_the_server(api: Api) -> None:
    cookies = signed_in(api)
    stolen = dict(cookies)  # a copy of the cookie, as an attacker on a shared computer keeps it
    api.client.cookies = cookies
    assert api.client.get("/dashboard", follow_redirects=False).status_code == 200
    out = api.client.post("/dashboard/sign-out", headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert out.status_code == 303
    api.client.cookies = stolen
    replay = api.client.get("/dashboard", follow_redirects=False)
    assert replay.status_code in (303, 307) and replay.headers["location"].endswith("/dashboard/sign-in")
    api.client.cookies = signed_in(api)  # a new sign-in works at once
    assert api.client.get("/dashboard", follow_redirects=False).status_code == 200


def test_a_method_a_path_does_not_take_is_405_with_every_method_it_does(api: Api) -> None:
    """``Allow`` names every method of the path: the link pages take GET and POST (one-click
    unsubscribe posts), not only the method of the first route that matched."""
    engine = api.engine
    [out] = engine.leads.capture_leads([young_pro(1)])
    assert out.lead_id is not None
    unsubscribe = "/unsubscribe" + engine.deliveries.unsubscribe_url(out.lead_id, "email").split("/unsubscribe", 1)[1]
    confirm = "/confirm" + engine.deliveries.confirm_url(out.lead_id, "email").split("/confirm", 1)[1]
    for path in (unsubscribe, confirm):
        for method in ("OPTIONS", "PUT", "DELETE"):
            r = api.client.request(method, path)
            assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "POST"}, path
    r = api.call("DELETE", "/tasks", "agent")
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"
    assert r.headers["allow"] == "GET"
