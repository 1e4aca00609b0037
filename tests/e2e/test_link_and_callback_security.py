"""Safe to expose: links a lead opens carry a purpose, an expiry and a key id; provider callbacks
need the provider's signature; services refuse weak secrets. Tried as an attacker would."""

from __future__ import annotations

import urllib.parse
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine.adapters.clock import VirtualClock
from engine.adapters.twilio_sms import TwilioCallbacks
from engine.application.delivery.links import LinkCheck, LinkKeys, _mac, check_token, issued_at, key_id, make_token
from engine.application.leads.timeline import lead_timeline
from engine.entrypoints.cli import app
from engine.entrypoints.http import create_app
from tests.conftest import MakeEngine
from tests.e2e.test_opt_out import AUTH_TOKEN, twilio_post
from tests.helpers import cli_environment, young_pro

KEY = "k" * 40
OLD = "o" * 40


@pytest.fixture
def engine(make_engine: MakeEngine) -> Any:
    engine = make_engine(settings={"unsubscribe_secret": KEY})
    engine.leads.capture_leads([young_pro(1)])
    engine.run()
    return engine


def client_for(engine: Any) -> TestClient:
    return TestClient(create_app(engine, LinkKeys(KEY), "CN", TwilioCallbacks(AUTH_TOKEN)))


def test_a_token_is_bound_to_its_purpose_lead_channel_and_key(clock: VirtualClock) -> None:
    me, you, now = uuid4(), uuid4(), clock.now()
    token = make_token(LinkKeys(KEY), "unsubscribe", me, "email", now)
    assert check_token(LinkKeys(KEY), "unsubscribe", me, "email", token, now) is LinkCheck.VALID
    assert check_token(LinkKeys(KEY), "unsubscribe", you, "email", token, now) is LinkCheck.INVALID
    assert check_token(LinkKeys(KEY), "unsubscribe", me, "sms", token, now) is LinkCheck.INVALID
    assert check_token(LinkKeys(KEY), "confirm", me, "email", token, now) is LinkCheck.INVALID  # no cross-use
    assert check_token(LinkKeys("x" * 40), "unsubscribe", me, "email", token, now) is LinkCheck.INVALID
    kid, day, issued, mac = token.split(".")
    later = f"{kid}.{int(day, 16) + 1000:x}.{issued}.{mac}"  # an attacker stretching the expiry breaks the MAC
    assert check_token(LinkKeys(KEY), "unsubscribe", me, "email", later, now) is LinkCheck.INVALID
    younger = f"{kid}.{day}.{int(issued, 16) + 60_000:x}.{mac}"  # or making it look issued later
    assert check_token(LinkKeys(KEY), "unsubscribe", me, "email", younger, now) is LinkCheck.INVALID
    assert issued_at("unsubscribe", token) == now.replace(microsecond=now.microsecond // 1000 * 1000)
    for hostile in ("é" * 30, "x" * 10_000, "", "..", f"{kid}.zz.{issued}.{mac}", f"{kid}.{day}.zz.{mac}", "\x00"):
        assert check_token(LinkKeys(KEY), "unsubscribe", me, "email", hostile, now) is LinkCheck.INVALID


def test_links_sent_before_tokens_named_their_moment_still_work(clock: VirtualClock) -> None:
    lead, now = uuid4(), clock.now()
    expires = int((now + timedelta(days=7)).timestamp()) // 86_400
    old_confirm = f"{key_id(KEY)}.{expires:x}.{_mac(KEY, f'confirm|{lead}|email|{expires}')}"
    assert check_token(LinkKeys(KEY), "confirm", lead, "email", old_confirm, now) is LinkCheck.VALID
    issued = issued_at("confirm", old_confirm)
    assert issued is not None and issued <= now  # the earliest it can have been sent
    expires = int((now + timedelta(days=1)).timestamp()) // 86_400
    old_session = f"{key_id(KEY)}.{expires:x}.{_mac(KEY, f'dashboard|{lead}|session|{expires}')}"
    assert check_token(LinkKeys(KEY), "dashboard", lead, "session", old_session, now) is LinkCheck.INVALID


def test_confirmation_links_expire_in_days_and_unsubscribe_links_last(clock: VirtualClock) -> None:
    lead, now = uuid4(), clock.now()
    confirm = make_token(LinkKeys(KEY), "confirm", lead, "email", now)
    unsubscribe = make_token(LinkKeys(KEY), "unsubscribe", lead, "email", now)
    assert check_token(LinkKeys(KEY), "confirm", lead, "email", confirm, now + timedelta(days=6)) is LinkCheck.VALID
    late = now + timedelta(days=9)
    assert check_token(LinkKeys(KEY), "confirm", lead, "email", confirm, late) is LinkCheck.EXPIRED
    a_year = now + timedelta(days=365)
    assert check_token(LinkKeys(KEY), "unsubscribe", lead, "email", unsubscribe, a_year) is LinkCheck.VALID


def test_keys_rotate_old_links_keep_working_while_the_old_key_is_listed(clock: VirtualClock) -> None:
    lead, now = uuid4(), clock.now()
    signed_before = make_token(LinkKeys(OLD), "unsubscribe", lead, "email", now)
    rotated = LinkKeys(KEY, (OLD,))
    assert check_token(rotated, "unsubscribe", lead, "email", signed_before, now) is LinkCheck.VALID
    assert make_token(rotated, "unsubscribe", lead, "email", now).split(".")[0] != signed_before.split(".")[0]
    assert check_token(LinkKeys(KEY), "unsubscribe", lead, "email", signed_before, now) is LinkCheck.INVALID


def test_the_pages_answer_404_or_410_never_500(engine: Any, clock: VirtualClock) -> None:
    [lead_id] = engine.leads.lead_ids()
    client = client_for(engine)
    path = urllib.parse.urlparse(engine.deliveries.unsubscribe_url(lead_id, "email")).path
    assert client.get(path).status_code == 200
    for token in ("%C3%A9t%C3%A9", "x" * 500, "a.b.c", "%00"):
        assert client.get(f"/unsubscribe/{lead_id}/email/{token}").status_code == 404
    assert client.get(f"/unsubscribe/not-a-uuid/email/{path.rsplit('/', 1)[1]}").status_code == 422
    confirm = urllib.parse.urlparse(engine.deliveries.confirm_url(lead_id, "email")).path
    clock.advance_to(clock.now() + timedelta(days=8))
    expired = client.post(confirm)
    assert expired.status_code == 410 and "expired" in expired.text
    timeline = lead_timeline(engine, lead_id)["timeline"]
    assert not any("double opt-in confirmed" in t["why"] for t in timeline)  # nothing was recorded


def test_sms_callbacks_need_the_providers_signature(engine: Any, tmp_path: Path) -> None:
    client = client_for(engine)
    stop = {"From": "+8613800130001", "Body": "STOP", "MessageSid": "SM1"}
    assert client.post("/sms/inbound", data=stop).status_code == 403  # one curl used to opt anyone out
    assert twilio_post(client, "/sms/inbound", stop, token="guessed").status_code == 403
    tampered = client.post(
        "/sms/inbound",
        data={**stop, "From": "+8613800130002"},
        headers={"X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
    )
    assert tampered.status_code == 403
    [lead_id] = engine.leads.lead_ids()
    assert engine.leads.get_lead(lead_id).has_consent("sms", "marketing")  # nobody opted out
    assert twilio_post(client, "/sms/inbound", stop).status_code == 200
    assert not engine.leads.fresh_lead(lead_id).has_consent("sms", "marketing")
    off = TestClient(create_app(engine, LinkKeys(KEY)))  # no provider token configured: callbacks are off
    assert off.post("/sms/inbound", data=stop).status_code == 403


@pytest.mark.parametrize("command", [["serve"], ["worker"], ["run"]])
@pytest.mark.parametrize(
    ("secret", "pepper", "problem"),
    [
        ("", "p" * 40, "HUOKE_UNSUBSCRIBE_SECRET is not set"),
        ("change-me", "p" * 40, "HUOKE_UNSUBSCRIBE_SECRET is a published default"),
        ("short", "p" * 40, "HUOKE_UNSUBSCRIBE_SECRET has 5 characters"),
        ("s" * 40, "huoke-suppression", "HUOKE_SUPPRESSION_PEPPER is a published default"),
        ("k" * 36, "q8Vx2-pLr0TzW5mN_c7yHbA3uJdEe9Kf4GsQ", "HUOKE_UNSUBSCRIBE_SECRET is too predictable"),
        ("ab" * 20, "q8Vx2-pLr0TzW5mN_c7yHbA3uJdEe9Kf4GsQ", "about 40 bits of randomness"),
    ],
)
def test_services_refuse_to_start_with_weak_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], secret: str, pepper: str, problem: str
) -> None:
    cli_environment(tmp_path, monkeypatch)
    monkeypatch.setenv("HUOKE_UNSUBSCRIBE_SECRET", secret)
    monkeypatch.setenv("HUOKE_SUPPRESSION_PEPPER", pepper)
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1 and f"huoke {command[0]} refuses to start" in result.stderr
    assert problem in result.stderr and "secrets.token_urlsafe" in result.stderr
