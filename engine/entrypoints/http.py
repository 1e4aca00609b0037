"""HTTP endpoints: one-click unsubscribe (RFC 8058), inbound SMS replies and delivery receipts.

Run with `huoke serve`. The links in every marketing e-mail point here; the SMS provider is
configured to post replies and status callbacks here.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Match

from engine.adapters.lead_rows import normalise_phone
from engine.adapters.store_watch import StoreWatch
from engine.adapters.user_agents import is_bot
from engine.application.access import Access
from engine.application.delivery.clicks import Click, Clicks, ClickWriter, Followed
from engine.application.delivery.links import LinkCheck, LinkKeys, check_lead_link, issued_at
from engine.application.engine import Engine
from engine.application.ports import CallbackVerifier
from engine.domain.delivery.suppression import is_opt_out
from engine.domain.delivery.tracking import is_code, tracking_key
from engine.domain.shared.errors import HuokeError, LeadNotFoundError
from engine.entrypoints.http_edge import PROBLEM, Edge, StoreGate, problem_document
from engine.eventstore.saving import store_unreachable
from engine.presentation import pages
from engine.settings import Settings


def create_app(
    engine: Engine,
    keys: LinkKeys,
    phone_region: str = "CN",
    callbacks: CallbackVerifier | None = None,
    public_url: str = "",
    api: tuple[Access, Settings] | None = None,
    asyncapi: str = "",
    store: StoreWatch | None = None,
) -> FastAPI:
    """The HTTP API around one engine; numbers without +country are read in ``phone_region``.
    Provider callbacks are accepted only when ``callbacks`` verifies the provider's signature
    (the URL signed is ``public_url`` + path where huoke sits behind a proxy); without a
    verifier they are refused. With ``api`` (the key store and settings) the authenticated
    API is served under ``/api/v1`` (see ``engine.entrypoints.api``) and the marketer's dashboard
    under ``/dashboard``."""
    app = FastAPI(
        title="huoke",
        version="1",
        summary="Marketing automation for lenders: leads, lifecycle events, journeys, tasks, reports.",
        docs_url=None,
        redoc_url=None,
    )

    watch = store or StoreWatch()
    app.add_middleware(StoreGate, watch=watch, unreachable=store_unreachable)
    app.add_middleware(Edge)  # before any route: the body cap and the security headers

    @app.get("/health")
    def health() -> dict[str, str]:
        """The process answers (always 200); ``store`` says whether the store does too."""
        return {"status": "ok", "store": "down" if watch.down else "up"}

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc: Exception) -> Response:
        """405 with ``Allow`` naming every method the path takes (Starlette names only those of
        the first route whose path matched: ``GET`` for a link page that takes POST too)."""
        allowed = ", ".join(sorted(allowed_methods(app, request.scope))) or "GET"
        if request.url.path.startswith("/api/"):
            body = problem_document(405, f"{request.method} is not allowed here; allowed: {allowed}")
            return JSONResponse(body, 405, {"Allow": allowed}, media_type=PROBLEM)
        return JSONResponse({"detail": "Method Not Allowed"}, 405, {"Allow": allowed})

    _link_routes(app, engine, keys)
    if engine is not None:
        _tracked_link_routes(app, engine, keys)
    _referral_page(app, engine)
    _sms_routes(app, engine, phone_region, callbacks, public_url)
    if asyncapi:

        @app.get("/asyncapi", include_in_schema=False)
        def asyncapi_document() -> Response:
            """The event bus's AsyncAPI document (subjects, streams, message schemas)."""
            return Response(asyncapi, media_type="application/json")

    if api is not None:
        from engine.entrypoints.api import add_api
        from engine.entrypoints.dashboard import add_dashboard

        add_api(app, engine, *api)
        add_dashboard(app, engine, *api, keys)
    return app


def allowed_methods(app: FastAPI, scope: dict[str, Any] | Any) -> set[str]:
    """Every method some route of ``app`` takes at the request's path."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return methods


class PageError(HuokeError):
    """A public page's refusal (an invalid or expired link), shown as a page, not a document."""

    def __init__(self, status: int, key: str, language: str | None = None) -> None:
        super().__init__(key)
        self.status, self.key, self.language = status, key, language


def _sender(engine: Engine | None) -> tuple[str, str]:
    """The lender's name and postal address, as its messages show them."""
    sender = getattr(getattr(engine, "deliveries", None), "sender", None)
    return (sender.name, sender.postal_address) if sender is not None else ("", "")


def _link_routes(app: FastAPI, engine: Engine, keys: LinkKeys) -> None:
    """The pages a lead opens from a message: unsubscribe, and double opt-in confirmation, in
    the lead's own language."""
    lender, address = _sender(engine)

    @app.exception_handler(PageError)
    async def refused(request: Request, exc: PageError) -> HTMLResponse:
        lang = pages.language_of(exc.language, request.headers.get("accept-language", ""))
        return HTMLResponse(pages.tell(lang, exc.key, lender, address), status_code=exc.status)

    def verify(lead_id: UUID, channel: str, token: str, purpose: str = "unsubscribe") -> str:
        """The lead's language, once the link is genuine and current."""
        verdict, language = check_lead_link(engine, keys, purpose, lead_id, channel, token)
        if verdict is LinkCheck.INVALID:
            raise PageError(404, "invalid")  # anyone's guess: the browser's language
        if verdict is LinkCheck.EXPIRED:  # a genuine link, only old: the lead's own language
            raise PageError(410, "expired", language)
        return pages.language_of(language)

    @app.api_route("/unsubscribe/test-send", methods=["GET", "POST"], include_in_schema=False)
    @app.api_route("/confirm/test-send", methods=["GET", "POST"], include_in_schema=False)
    def test_send_link(request: Request) -> HTMLResponse:
        """The unsubscribe and confirmation links of a test send (``journeys test-send``): they
        answer, in the reader's language, and change no one's consent."""
        lang = pages.language_of(None, request.headers.get("accept-language", ""))
        return HTMLResponse(pages.tell(lang, "test", lender, address))

    @app.get("/unsubscribe/{lead_id}/{channel}/{token}", response_class=HTMLResponse)
    def confirm_page(lead_id: UUID, channel: str, token: str) -> str:
        lang = verify(lead_id, channel, token)
        return pages.ask(lang, "unsubscribe", lender, address, what=pages.text(lang, f"what.{channel}"))

    @app.post("/unsubscribe/{lead_id}/{channel}/{token}", response_class=HTMLResponse)
    def unsubscribe(lead_id: UUID, channel: str, token: str) -> str:
        """One click: the List-Unsubscribe-Post request of a mail client, or the page's button."""
        lang = verify(lead_id, channel, token)
        try:
            engine.leads.opt_out(lead_id, channel, "unsubscribe link", "one-click unsubscribe", engine.clock.now())
        except LeadNotFoundError:
            raise PageError(404, "invalid") from None
        return pages.tell(lang, "unsubscribed", lender, address, what=pages.text(lang, f"what.{channel}"))

    @app.get("/confirm/{lead_id}/{channel}/{token}", response_class=HTMLResponse)
    def confirm_form(lead_id: UUID, channel: str, token: str) -> str:
        lang = verify(lead_id, channel, token, "confirm")
        return pages.ask(lang, "confirm", lender, address)

    @app.post("/confirm/{lead_id}/{channel}/{token}", response_class=HTMLResponse)
    def confirm(lead_id: UUID, channel: str, token: str) -> str:
        """Double opt-in: consent starts when the lead confirms (a POST, so link scanners do not)."""
        lang = verify(lead_id, channel, token, "confirm")
        issued = issued_at("confirm", token)
        try:
            refused = (
                "no moment"
                if issued is None
                else engine.leads.confirm_consent(
                    lead_id, channel, "confirmation link", "double opt-in confirmed", issued, engine.clock.now()
                )
            )
        except LeadNotFoundError:
            raise PageError(404, "invalid") from None
        if refused:  # opted out (or erased) since the link was sent: the link is spent
            raise PageError(410, "expired", lang)
        return pages.tell(lang, "confirmed", lender, address)


#: The open pixel: a transparent 1×1 GIF.
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


def _tracked_link_routes(app: FastAPI, engine: Engine, keys: LinkKeys) -> None:
    """``/l/<code>``: a tracked link, redirected to the destination huoke rendered into that
    message (never anywhere else) once the click is recorded; ``/o/<code>``: the open pixel."""
    clicks = Clicks(engine.deliveries, [tracking_key(k) for k in (keys.current, *keys.old) if k], is_bot)
    writer = ClickWriter(clicks)
    no_store = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

    async def follow(code: str, request: Request) -> Followed | None:
        if not is_code(code):
            return None
        agent = request.headers.get("user-agent", "")[:500]
        return await asyncio.wrap_future(writer.submit(Click(code, request.method, agent, engine.clock.now())))

    @app.api_route("/l/{code}", methods=["GET", "HEAD"], include_in_schema=False)
    async def tracked_link(code: str, request: Request) -> Response:
        followed = await follow(code, request)
        if followed is None or followed.url is None:
            raise PageError(404, "invalid")  # not a link huoke sent (or its message's lead was erased)
        return RedirectResponse(followed.url, status_code=302, headers=no_store)

    @app.get("/o/{code}", include_in_schema=False)
    async def open_pixel(code: str, request: Request) -> Response:
        await follow(code, request)
        return Response(PIXEL, media_type="image/gif", headers=no_store)


def _referral_page(app: FastAPI, engine: Engine | None) -> None:
    """The link a customer shares with friends: the code to quote when applying (the referrer is
    never named to the visitor), in the visitor's browser language."""
    lender, address = _sender(engine)

    @app.get("/r/{code}", response_class=HTMLResponse)
    def referral_landing(code: str, request: Request) -> HTMLResponse:
        from engine.domain.referrals.codes import read_code

        lang = pages.language_of(None, request.headers.get("accept-language", ""))
        normal = read_code(code)
        if normal is None:
            return HTMLResponse(pages.tell(lang, "invalid", lender, address), status_code=404)
        return HTMLResponse(pages.referral(lang, normal, lender, address))


def _sms_routes(
    app: FastAPI, engine: Engine, phone_region: str, callbacks: CallbackVerifier | None, public_url: str
) -> None:
    """The SMS provider's callbacks: replies and delivery receipts, each signed by the provider."""

    async def signed_form(request: Request) -> dict[str, str]:
        """The callback's form, if the provider signed it (403 otherwise)."""
        form = {k: str(v) for k, v in (await request.form()).items()}
        if callbacks is None:
            raise HTTPException(status_code=403, detail="SMS callbacks are off: set HUOKE_TWILIO_AUTH_TOKEN")
        url = str(request.url)
        if public_url:
            query = f"?{request.url.query}" if request.url.query else ""
            url = f"{public_url.rstrip('/')}{request.url.path}{query}"
        if not callbacks.verify(url, form, request.headers):
            raise HTTPException(status_code=403, detail=f"bad or missing {callbacks.name} signature")
        return form

    @app.post("/sms/inbound")
    async def sms_inbound(request: Request) -> Response:
        """A reply from a lead (Twilio's webhook form, signed). Opt-out keywords take effect at
        once, for the number as the import writes it (E.164), however the provider spelled it."""
        form = await signed_form(request)
        problems: list[str] = []
        phone = normalise_phone(form.get("From", ""), phone_region, problems)
        if phone is None:
            raise HTTPException(status_code=400, detail="; ".join(problems) or "no sender number")
        body = form.get("Body", "")[:1600]
        if is_opt_out(body):
            engine.sms_reply_opt_out(phone, body, engine.clock.now())
        return Response('<?xml version="1.0" encoding="UTF-8"?><Response/>', media_type="application/xml")

    @app.post("/sms/status")
    async def sms_status(send_id: UUID, request: Request) -> dict[str, str]:
        """A delivery receipt for the SMS with ``send_id`` (in the StatusCallback URL, signed)."""
        form = await signed_form(request)
        status = form.get("MessageStatus", "")
        if callbacks is None or status not in callbacks.statuses:
            raise HTTPException(status_code=400, detail=f"unknown MessageStatus {status[:40]!r}")
        error = form.get("ErrorCode", "")[:16]
        if not engine.deliveries.record_receipt(send_id, status, error, engine.clock.now()):
            raise HTTPException(status_code=404, detail="unknown send id")
        return {"recorded": status}
