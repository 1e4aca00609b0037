"""HTTP endpoints: one-click unsubscribe (RFC 8058), inbound SMS replies and delivery receipts.

Run with `huoke serve`. The links in every marketing e-mail point here; the SMS provider is
configured to post replies and status callbacks here.
"""

from __future__ import annotations

from html import escape
from typing import Annotated
from uuid import UUID

from fastapi import FastAPI, Form, HTTPException
from fastapi.responses import HTMLResponse, Response

from engine.application.delivery.app import check_unsubscribe_token
from engine.application.engine import Engine
from engine.domain.delivery.suppression import is_opt_out
from engine.domain.shared.errors import LeadNotFoundError
from engine.entrypoints.schemas import normalise_phone

PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto; line-height: 1.5">
<h1 style="font-size: 1.4rem">{title}</h1>{body}</body></html>"""


def create_app(engine: Engine, secret: str, phone_region: str = "CN") -> FastAPI:
    """The HTTP API around one engine; numbers without +country are read in ``phone_region``."""
    app = FastAPI(title="huoke", docs_url=None, redoc_url=None)

    def verify(lead_id: UUID, channel: str, token: str) -> None:
        if channel not in ("email", "sms", "phone") or not check_unsubscribe_token(secret, lead_id, channel, token):
            raise HTTPException(status_code=404, detail="This link is not valid.")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/unsubscribe/{lead_id}/{channel}/{token}", response_class=HTMLResponse)
    def confirm_page(lead_id: UUID, channel: str, token: str) -> str:
        verify(lead_id, channel, token)
        what = {"email": "e-mails", "sms": "text messages", "phone": "calls"}[channel]
        form = (
            f"<p>Stop marketing {escape(what)} from us? / 不再接收营销信息？</p>"
            f'<form method="post"><button type="submit" style="font-size: 1.1rem; padding: .6rem 1.2rem">'
            f"Unsubscribe / 退订</button></form>"
        )
        return PAGE.format(lang="en", title="Unsubscribe", body=form)

    @app.post("/unsubscribe/{lead_id}/{channel}/{token}", response_class=HTMLResponse)
    def unsubscribe(lead_id: UUID, channel: str, token: str) -> str:
        """One click: the List-Unsubscribe-Post request of a mail client, or the page's button."""
        verify(lead_id, channel, token)
        try:
            engine.leads.opt_out(lead_id, channel, "unsubscribe link", "one-click unsubscribe", engine.clock.now())
        except LeadNotFoundError:
            raise HTTPException(status_code=404, detail="This link is not valid.") from None
        return PAGE.format(
            lang="en",
            title="You are unsubscribed / 已退订",
            body="<p>You will not receive marketing messages on this channel again. 您将不再收到此渠道的营销信息。</p>",
        )

    @app.get("/confirm/{lead_id}/{channel}/{token}", response_class=HTMLResponse)
    def confirm_form(lead_id: UUID, channel: str, token: str) -> str:
        check_confirm(lead_id, channel, token)
        body = (
            "<p>Confirm that you want our offers by e-mail. / 确认接收我们的电子邮件信息。</p>"
            '<form method="post"><button type="submit" style="font-size: 1.1rem; padding: .6rem 1.2rem">'
            "Confirm / 确认</button></form>"
        )
        return PAGE.format(lang="en", title="Confirm your subscription / 确认订阅", body=body)

    @app.post("/confirm/{lead_id}/{channel}/{token}", response_class=HTMLResponse)
    def confirm(lead_id: UUID, channel: str, token: str) -> str:
        """Double opt-in: consent starts when the lead confirms (a POST, so link scanners do not)."""
        check_confirm(lead_id, channel, token)
        try:
            engine.leads.confirm_consent(
                lead_id, channel, "confirmation link", "double opt-in confirmed", engine.clock.now()
            )
        except LeadNotFoundError:
            raise HTTPException(status_code=404, detail="This link is not valid.") from None
        return PAGE.format(
            lang="en", title="Thank you / 谢谢", body="<p>Your subscription is confirmed. 订阅已确认。</p>"
        )

    def check_confirm(lead_id: UUID, channel: str, token: str) -> None:
        if channel != "email" or not check_unsubscribe_token(secret, lead_id, f"confirm:{channel}", token):
            raise HTTPException(status_code=404, detail="This link is not valid.")

    @app.post("/sms/inbound")
    def sms_inbound(from_: Annotated[str, Form(alias="From")], body: Annotated[str, Form(alias="Body")]) -> Response:
        """A reply from a lead (Twilio's webhook form). Opt-out keywords take effect at once, for
        the number as the import writes it (E.164), however the provider spelled it."""
        problems: list[str] = []
        phone = normalise_phone(from_, phone_region, problems)
        if phone is None:
            raise HTTPException(status_code=400, detail="; ".join(problems) or "no sender number")
        if is_opt_out(body):
            engine.sms_reply_opt_out(phone, body, engine.clock.now())
        return Response('<?xml version="1.0" encoding="UTF-8"?><Response/>', media_type="application/xml")

    @app.post("/sms/status")
    def sms_status(
        send_id: UUID,
        status: Annotated[str, Form(alias="MessageStatus")],
        error: Annotated[str, Form(alias="ErrorCode")] = "",
    ) -> dict[str, str]:
        """A delivery receipt for the SMS with ``send_id`` (in the StatusCallback URL)."""
        if not engine.deliveries.record_receipt(send_id, status, error, engine.clock.now()):
            raise HTTPException(status_code=404, detail="unknown send id")
        return {"recorded": status}

    return app
