"""End to end through a real SMTP server on loopback: send, read back, check headers and copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from engine.adapters import smtp as smtp_module
from engine.adapters.clock import VirtualClock
from engine.application.delivery.links import LinkCheck, LinkKeys, check_token
from engine.application.leads.timeline import lead_timeline
from engine.application.reports import funnel_report
from tests.conftest import MakeEngine
from tests.e2e.smtp_server import RecordingHandler, smtp_server
from tests.helpers import count_calls, sms_lines, young_pro

pytestmark = pytest.mark.smtp


def smtp_settings(port: int) -> dict[str, object]:
    return {
        "email_transport": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "sender_email": "news@bank.example",
        "unsubscribe_secret": "s3cret",
    }


def test_emails_arrive_with_message_id_unsubscribe_and_postal_address(
    store: str, make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    handler = RecordingHandler()
    with smtp_server(handler) as port:
        engine = make_engine(settings=smtp_settings(port))
        out, _ = engine.leads.capture_leads(
            [
                young_pro(1),
                young_pro(
                    2,
                    contact={
                        "name": "李娜",
                        "phone": "+8613800130002",
                        "email": "lina@example.com",
                        "language": "zh-CN",
                    },
                ),
            ]
        )
        engine.run(until=clock.now() + timedelta(days=30))
    assert len(handler.received) == 4  # welcome + last call, for each of the two leads
    by_to = {m["To"]: m for m in handler.received if "3 steps" in m["Subject"] or "3步" in m["Subject"]}
    english, chinese = by_to["alex1@example.com"], by_to["lina@example.com"]
    assert english["Subject"] == "Alex, apply in 3 steps — no branch visit"
    assert chinese["Subject"] == "李娜，3步在线申请，无需跑网点"
    assert english["From"] == "Huoke Lending <news@bank.example>"
    assert english["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    send_id = english["X-Huoke-Send-Id"]
    assert english["Message-ID"] == f"<{send_id}@bank.example>"
    url = english["List-Unsubscribe"].strip().strip("<>")
    lead_id, channel, token = url.split("/")[-3:]
    verdict = check_token(LinkKeys("s3cret"), "unsubscribe", out.lead_id, channel, token, datetime.now(UTC))  # type: ignore[arg-type]
    assert verdict is LinkCheck.VALID and lead_id == str(out.lead_id)
    text = english.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = english.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "1 Finance Street" in text and url in text
    assert "<ol><li>" in html and "Unsubscribe</a>" in html
    # The Message-ID is the id recorded on the Delivery: the timeline links to it.
    doc = lead_timeline(engine, out.lead_id)  # type: ignore[arg-type]
    assert any(t["event"] == "Delivery.Sent" and "alex1@example.com" in t["what"] for t in doc["timeline"])
    assert len(sms_lines(tmp_path / "outbox")) == 4


def test_hard_bounce_is_recorded_failed_and_greylisting_is_retried(
    make_engine: MakeEngine, clock: VirtualClock
) -> None:
    handler = RecordingHandler(
        reject={"alex1@example.com": "550 5.1.1 mailbox unknown"}, greylist_once={"alex2@example.com"}
    )
    with smtp_server(handler) as port:
        engine = make_engine(settings=smtp_settings(port))
        engine.leads.capture_leads([young_pro(1), young_pro(2)])
        first = engine.run()
        assert (first.dispatch.failed, first.dispatch.deferred) == (1, 1)  # the 550 failed, the 451 held
        assert [m["To"] for m in handler.received] == []
        assert engine.run().dispatch.sent == 0  # not before its back-off (5 minutes ± 20%)
        second = engine.run(until=clock.now() + timedelta(minutes=10))  # retried; the bounce is not
        assert second.dispatch.sent == 1
    assert [m["To"] for m in handler.received] == ["alex2@example.com"]
    rows = {(m["step"], m["channel"]): m for m in funnel_report(engine)["messages"]}
    assert rows[("welcome_email", "email")]["failed"] == 1
    assert rows[("welcome_email", "email")]["sent"] == 1


def test_unreachable_server_loses_nothing(make_engine: MakeEngine, clock: VirtualClock) -> None:
    from tests.e2e.smtp_server import free_port

    port = free_port()  # nothing listens here yet
    engine = make_engine(settings=smtp_settings(port))
    engine.leads.capture_leads([young_pro(1)])
    assert engine.run().dispatch.deferred == 1
    held = engine.schedule.held()
    assert held[0]["channel"] == "email" and held[0]["reason"].startswith(
        "email paused until it answers: cannot reach SMTP server"
    )
    handler = RecordingHandler()
    from aiosmtpd.controller import Controller

    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        engine.run(until=clock.now() + timedelta(minutes=10))
    finally:
        controller.stop()
    assert [m["To"] for m in handler.received] == ["alex1@example.com"]


class DisconnectOnce(RecordingHandler):
    """Drops the connection at DATA the first time (a server restart mid-send)."""

    dropped: bool = False

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        if not self.dropped:
            self.dropped = True
            server.transport.close()  # type: ignore[attr-defined]
            return "421 closing"
        return await super().handle_DATA(server, session, envelope)


class SlowReply(RecordingHandler):
    """Answers DATA after longer than the client waits."""

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        import asyncio

        await asyncio.sleep(1.5)
        return await super().handle_DATA(server, session, envelope)


def test_a_dropped_connection_is_retried_and_nothing_is_lost(make_engine: MakeEngine, clock: VirtualClock) -> None:
    handler = DisconnectOnce()
    with smtp_server(handler) as port:
        engine = make_engine(settings={**smtp_settings(port), "smtp_connections": 1})
        engine.leads.capture_leads([young_pro(1)])
        first = engine.run()
        assert first.dispatch.deferred == 1 and handler.received == []
        engine.run(until=clock.now() + timedelta(minutes=10))
    assert [m["To"] for m in handler.received] == ["alex1@example.com"]


def test_a_slow_server_times_out_and_the_message_is_held(make_engine: MakeEngine, clock: VirtualClock) -> None:
    with smtp_server(SlowReply()) as port:
        engine = make_engine(settings={**smtp_settings(port), "smtp_timeout": 0.5})
        engine.leads.capture_leads([young_pro(1)])
        report = engine.run()
    assert report.dispatch.deferred == 1 and report.dispatch.failed == 0
    assert engine.schedule.held()[0]["reason"].startswith("retry after:")


def test_authentication_failure_halts_email_loudly_and_loses_nothing(
    make_engine: MakeEngine, clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from tests.e2e.smtp_server import free_port

    good = {"ok": False}

    def authenticator(server: object, session: object, envelope: object, mechanism: str, auth: object) -> AuthResult:
        login = getattr(auth, "login", b"")
        return (
            AuthResult(success=True) if good["ok"] and login == b"huoke" else AuthResult(success=False, handled=False)
        )

    handler = RecordingHandler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        engine = make_engine(settings={**smtp_settings(port), "smtp_username": "huoke", "smtp_password": "wrong"})
        engine.leads.capture_leads([young_pro(1), young_pro(2)])
        with caplog.at_level("ERROR"):
            report = engine.run()
        assert report.dispatch.deferred == 2 and report.dispatch.failed == 0
        assert any("SMTP authentication failed" in r.message for r in caplog.records)
        assert all(
            h["reason"].startswith("email paused until it answers: SMTP authentication failed")
            for h in engine.schedule.held()
        )
        good["ok"] = True  # the operator fixes the credentials and restarts the worker
        fixed = make_engine(settings={**smtp_settings(port), "smtp_username": "huoke", "smtp_password": "right"})
        fixed.run(until=clock.now() + timedelta(minutes=10))
    finally:
        controller.stop()
    assert sorted(m["To"] for m in handler.received) == ["alex1@example.com", "alex2@example.com"]


def test_a_two_hour_outage_pauses_e_mail_and_loses_nothing(make_engine: MakeEngine, clock: VirtualClock) -> None:
    """The server is down for two hours of the virtual clock: one message probes it every two
    minutes, nothing fails, and everything goes within minutes of its return."""
    from aiosmtpd.controller import Controller

    from tests.e2e.smtp_server import free_port

    port = free_port()  # the server is down
    engine = make_engine(settings=smtp_settings(port))
    engine.leads.capture_leads([young_pro(n) for n in range(1, 6)])
    outage = engine.run(until=clock.now() + timedelta(hours=2))
    assert outage.dispatch.failed == 0
    held = [h for h in engine.schedule.held() if h["channel"] == "email"]
    waiting = sum(int(h["n"]) for h in held)
    assert waiting >= 4  # the welcome e-mails, all held
    assert all(h["reason"].startswith("email paused") for h in held)
    assert "down since" in " ".join(h["reason"] for h in held)  # the others wait for the probe
    engine.refresh_views()
    during = funnel_report(engine)["messages"]
    assert sum(m["retrying"] for m in during if m["channel"] == "email") == waiting  # the funnel shows them
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        back = engine.run(until=clock.now() + timedelta(minutes=5))
    finally:
        controller.stop()
    assert back.dispatch.failed == 0
    assert len(handler.received) == waiting and [h for h in engine.schedule.held() if h["channel"] == "email"] == []
    engine.refresh_views()
    assert all(m["retrying"] == 0 for m in funnel_report(engine)["messages"])  # none waits any more


def test_retries_end_after_the_retry_window_and_say_so(make_engine: MakeEngine, clock: VirtualClock) -> None:
    from tests.e2e.smtp_server import free_port

    engine = make_engine(settings={**smtp_settings(free_port()), "retry_hours": 1})
    engine.leads.capture_leads([young_pro(1)])
    report = engine.run(until=clock.now() + timedelta(hours=2))
    assert report.dispatch.failed == 1  # the e-mail (the SMS went out through the outbox)
    timeline = lead_timeline(engine, engine.leads.lead_ids()[0])["timeline"]
    failed = [t["why"] for t in timeline if t["event"] == "Delivery.Failed"]
    assert len(failed) == 1 and failed[0].startswith("gave up after 1 h of retries: cannot reach SMTP server")


def test_a_message_held_up_by_a_long_outage_follows_its_steps_stale_policy(
    make_engine: MakeEngine, clock: VirtualClock
) -> None:
    """Down for 25 hours (retries allowed for 48): the welcome e-mail (stale: skip, the default)
    is not sent a day late, and says why; nothing fails."""
    from aiosmtpd.controller import Controller

    from tests.e2e.smtp_server import free_port

    port = free_port()
    engine = make_engine(settings={**smtp_settings(port), "retry_hours": 48})
    [out] = engine.leads.capture_leads([young_pro(1)])
    t0 = clock.now()
    engine.run(until=t0 + timedelta(hours=25))
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        report = engine.run(until=t0 + timedelta(hours=30))
    finally:
        controller.stop()
    assert handler.received == [] and report.dispatch.failed == 0
    skipped = [t["why"] for t in lead_timeline(engine, out.lead_id)["timeline"] if t["event"] == "Delivery.Skipped"]  # type: ignore[arg-type]
    assert len(skipped) == 1 and skipped[0].startswith("stale: 24 h late, held up since")
    assert skipped[0].endswith("by email trouble (limit 24 h); the step says stale: skip")


def test_new_e_mail_goes_while_the_reconcile_search_api_is_down(make_engine: MakeEngine, clock: VirtualClock) -> None:
    """Only a message that may have left (its marker recorded, no outcome) is looked up by
    Message-ID: with the search API down and SMTP up, every new e-mail still goes."""
    from tests.e2e.smtp_server import free_port

    handler = RecordingHandler()
    with smtp_server(handler) as port:
        settings = {**smtp_settings(port), "smtp_reconcile_url": f"http://127.0.0.1:{free_port()}"}  # nothing there
        engine = make_engine(settings=settings)
        engine.leads.capture_leads([young_pro(n) for n in range(1, 6)])
        report = engine.run(until=clock.now() + timedelta(hours=1))
    assert report.dispatch.deferred == 0  # none waits for the search API
    assert len(handler.received) == 4  # every welcome e-mail (one lead has none; the SMS go to the outbox)


def test_a_follow_up_never_overtakes_its_welcome_after_an_outage(
    store: str, make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    """SMTP is down for ten virtual hours: the welcomes wait for the probe, the follow-ups fall
    due behind them. When it answers again each lead gets its welcome first, then the
    follow-up, and the follow-up's record says why it waited."""
    from aiosmtpd.controller import Controller

    from tests.e2e.smtp_server import free_port
    from tests.helpers import ALL_CONFIG, journeys_folder, welcome_then_follow_up

    port = free_port()  # the server is down
    folder = journeys_folder(tmp_path, config=ALL_CONFIG, in_order=welcome_then_follow_up("in-order"))
    engine = make_engine(settings={**smtp_settings(port), "journeys_dir": folder})
    out = engine.leads.capture_leads([young_pro(n) for n in range(1, 9)])
    for _ in range(20):  # the worker's passes through the outage, every half hour
        engine.run(until=clock.now() + timedelta(minutes=30))
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        for _ in range(12):
            engine.run(until=clock.now() + timedelta(minutes=10))
    finally:
        controller.stop()
    subjects: dict[str, list[str]] = {}
    for m in handler.received:
        subjects.setdefault(m["To"], []).append("welcome" if "3 steps" in m["Subject"] else "follow-up")
    assert len(subjects) >= 7 and all(s == ["welcome", "follow-up"] for s in subjects.values()), subjects
    reasons = [t["why"] for o in out for t in lead_timeline(engine, o.lead_id)["timeline"]]  # type: ignore[arg-type]
    assert any("waits for the earlier message" in r for r in reasons)


def test_a_worker_that_cannot_record_stops_sending_until_it_can(
    make_engine: MakeEngine, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch, mail_server: Any
) -> None:
    """The store stops taking writes after a few messages (a full or read-only disk, a lost
    database): the pass stops on every connection, nothing leaves without its dispatch marker
    recorded, and passes while the store still fails send nothing. When it records again every
    message goes, none twice (the one in doubt is found by Message-ID)."""
    from eventsourcing.persistence import OperationalError

    import engine.application.delivery.app as delivery_app

    sink, port, api = mail_server
    engine = make_engine(settings={**smtp_settings(port), "smtp_connections": 3, "smtp_reconcile_url": api})
    engine.leads.capture_leads([young_pro(n, contact=_contact(n)) for n in range(1, 31)])
    real_save = getattr(delivery_app, "save_batch")  # noqa: B009 - patched below
    recorded: list[int] = []
    marked: set[str] = set()  # the e-mails whose dispatch marker was committed
    broken = {"after": 4}

    def failing_save(app: Any, aggregates: Any, tracking: Any = None, claims: Any = ()) -> int:
        if len(recorded) >= broken["after"]:
            raise OperationalError("disk I/O error")
        recorded.append(1)
        going = [
            a.id
            for a in aggregates
            if getattr(a, "channel", "") == "email" and any(_marks(e) for e in a.pending_events)
        ]
        saved = real_save(app, aggregates, tracking, claims)
        marked.update(str(x) for x in going)
        return saved  # type: ignore[no-any-return]

    monkeypatch.setattr(delivery_app, "save_batch", failing_save)
    for _ in range(3):  # the first pass fails mid-way, the next two fail at once
        with pytest.raises(OperationalError):
            engine.run(until=clock.now() + timedelta(minutes=10))
    # Four records: the SMS (to the outbox), then e-mail markers and outcomes, a round of one
    # per connection at a time (a new request's marker is its Delivery's first event: there is
    # no record of the requests before them any more). Every e-mail that reached the server had its marker
    # recorded first, and nothing left once a round's markers could not be recorded.
    arrived = {i.split("@")[0] for i in sink.message_ids()}
    assert arrived and arrived <= marked
    assert len(marked) <= 3 * 2  # at most two rounds were marked before the store failed
    monkeypatch.setattr(delivery_app, "save_batch", real_save)
    engine.run(until=clock.now() + timedelta(minutes=10))
    engine.refresh_views()
    emails = sum(m["sent"] for m in funnel_report(engine)["messages"] if m["channel"] == "email")
    assert engine.schedule.held() == []  # nothing left waiting
    ids = sink.message_ids()
    assert len(ids) == len(set(ids)) == emails >= 25  # each welcome e-mail once


def _marks(e: Any) -> bool:
    """Whether a delivery's event is a dispatch marker (its own, or its request's)."""
    name = type(e).__name__
    return name == "Dispatching" or (name == "Requested" and getattr(e, "dispatching_at", None) is not None)


def _contact(n: int) -> dict[str, str]:
    return {"name": f"Alex {n}", "phone": f"+86138001{n:05d}", "email": f"alex{n}@example.com", "language": "en"}


class _Envelopes(RecordingHandler):
    """Keeps each accepted message's envelope and raw content too."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("to", ["alex@example.com", "陈先生 <chen@example.com>"])
def test_an_email_sent_as_bytes_arrives_as_the_built_message_would(to: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SMTP channel sends ``email_bytes`` with the sender and recipients ``send_message``
    would take from the built message (issue 27): the same envelope, headers and bodies arrive."""
    from engine.adapters.smtp import SmtpEmailChannel
    from engine.application.ports import OutgoingMessage, RenderedMessage
    from engine.application.sending import CollectedResults

    body = RenderedMessage("您的贷款预批已就绪", "您好,\nyour offer is ready.\n", "<p>您好</p>", "zh-CN", "zh-CN")
    # Sent at one moment by the engine's clock: both sends carry its Date (without it, each took
    # the wall clock's, and the two differed when a second ticked between them).
    at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    m = OutgoingMessage(uuid4(), "email", to, body, "https://l.example/u/x", {"X-Campaign": "spring"}, at=at)
    handler = _Envelopes()
    bytes_sent = count_calls(monkeypatch, smtp_module, "email_bytes")
    with smtp_server(handler) as port:
        channel = SmtpEmailChannel("127.0.0.1", port, "", "", "", "好客 Lender", "news@bank.example", connections=1)
        channel.send_batch([m], CollectedResults())
        monkeypatch.setattr(SmtpEmailChannel, "_plain", lambda self, m, recipients: False)  # as send_message sends it
        channel.send_batch([m], CollectedResults())
    assert len(bytes_sent) == 1  # the first went as bytes, the second as send_message built it
    (fast_from, fast_to, _), (built_from, built_to, _) = handler.envelopes
    assert (
        (fast_from, fast_to)
        == (built_from, built_to)
        == ("news@bank.example", ["alex@example.com"] if "alex" in to else ["chen@example.com"])
    )
    fast, built = handler.received
    assert [(k, v) for k, v in fast.items() if k != "Content-Type"] == [
        (k, v) for k, v in built.items() if k != "Content-Type"
    ]
    assert [p.get_content() for p in fast.iter_parts()] == [p.get_content() for p in built.iter_parts()]
