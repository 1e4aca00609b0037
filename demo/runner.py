"""The main job: the bundled journeys over a realistic sample, 60 simulated days in seconds."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from collections import defaultdict
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from demo.data import (
    BACK_BOOK_COLUMNS,
    DemoEvent,
    add_referrals,
    add_touches,
    back_book,
    bad_rows,
    demo_costs,
    generate,
    true_uplift,
)
from engine.adapters.clock import VirtualClock
from engine.adapters.lead_rows import LeadRow, LifecycleRow
from engine.adapters.model_data import read_csv
from engine.adapters.user_agents import is_bot
from engine.application.analytics import engagement_report
from engine.application.delivery.clicks import Click, Clicks
from engine.application.engine import Engine
from engine.application.importing import RowError
from engine.application.journeys.publishing import publish_new
from engine.application.journeys.tasks import complete_task
from engine.application.leads.commands import LeadRef
from engine.application.reports import funnel_report, referrals_report
from engine.application.screening import models
from engine.bootstrap import bootstrap, init_database, load_journey_definitions, referral_key, renderer_for
from engine.bootstrap.helper import with_helper
from engine.bootstrap.importing import import_costs
from engine.domain.delivery.tracking import tracking_key
from engine.domain.leads.identity import lead_id_for
from engine.domain.marketing.costs import COST_COLUMNS
from engine.domain.referrals.codes import referral_code
from engine.domain.shared.errors import HuokeError
from engine.domain.shared.values import Stage
from engine.settings import Settings

LEAD_COLUMNS = list(LeadRow.model_fields)


def write_samples(
    folder: Path, leads: list[dict[str, Any]], events: list[Any], costs: list[dict[str, Any]] | None = None
) -> None:
    """Keep the generated inputs next to the outbox, as a partner or core system would send them."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "leads.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, LEAD_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows([*leads, *bad_rows()])
    write_events(folder, events)
    if costs:
        with (folder / "costs.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, [*COST_COLUMNS, "note"])
            writer.writeheader()
            writer.writerows(costs)


def write_events(folder: Path, events: list[Any]) -> None:
    with (folder / "events.jsonl").open("w", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e.row, ensure_ascii=False, default=str) + "\n")


#: The demo trains the propensity model from its own history on this day (leads captured in
#: the first days have had their response window by then).
PROPENSITY_DAY = 30


def write_back_book(folder: Path, start: datetime, n: int) -> Path:
    path = folder / "back_book.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, BACK_BOOK_COLUMNS)
        writer.writeheader()
        writer.writerows(back_book(n, start))
    return path


def _inputs(s: Settings, n: int, days: int, folder: Path, start: datetime) -> tuple[list[Any], list[Any], Path]:
    """The files a lender would have: leads (with referred friends and second touches), lifecycle
    events, marketing costs and the back book the scorecard learns from."""
    leads, events = generate(n, start, capture_days=max(1, days * 2 // 3), sim_days=days)
    _friends_by_code(s, leads, events, start + timedelta(days=days), n)
    add_touches(leads)
    write_samples(folder, leads, events, demo_costs(start, max(1, days * 2 // 3)))  # costs of the capture days
    return leads, events, write_back_book(folder, start, max(4000, n * 2))


#: How the generated data marks a click on a message's link (a response to marketing).
CLICK_REASON = "clicked the application link"
#: The phone browser the demo's people click with, and the mail gateway some of their employers run.
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"
GATEWAY = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"
#: Share of e-mail recipients behind a security gateway that follows every link as it arrives.
GATEWAY_SHARE = 0.15
_TRACKED = re.compile(r"https?://\S+?/l/([A-Za-z0-9_-]{31})")


def _email_text(eml: Path) -> str:
    """The text and HTML parts of an e-mail file, decoded (as a mail client shows them)."""
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    parts = [message.get_body(("plain",)), message.get_body(("html",))]
    return "\n".join(str(p.get_content()) for p in parts if isinstance(p, EmailMessage))


class Responses:
    """Which generated responses happen in the simulation: a lead clicks only a link it was sent
    (the lender reached it first), so a holdout or an unreachable lead applies only as often as it
    would have unprompted, and split lift in the demo is real. With ``clicks`` (tracked links on),
    the click itself is real: the lead follows the first tracked link of the latest message huoke
    wrote to it (read from the outbox), through the same use case as ``/l/<code>``."""

    def __init__(self, clicks: Clicks | None = None, outbox: Path | None = None) -> None:
        self.clicked: dict[str, bool] = {}  # lead (source:external id) -> clicked a link it was sent
        self.unreached: set[int] = set()  # responses that did not happen (ids of their DemoEvents)
        self.clicks, self.outbox = clicks, outbox
        self._sms: dict[str, str] = {}  # send id -> text, read from sms.jsonl as it grows
        self._sms_read = 0
        self._gated: set[str] = set()  # e-mails whose links a gateway has followed

    def happening(self, engine: Engine, offered: list[tuple[Any, DemoEvent]]) -> list[Any]:
        facts = []
        for record, fact in offered:
            if self.clicks is not None and fact.row.get("reason") == CLICK_REASON:
                if not self._click(engine, record, fact):
                    self.unreached.add(id(fact))
                continue  # the click is recorded on the message, never as a lifecycle fact
            if self._happens(engine, record, fact):
                facts.append(record)
            else:
                self.unreached.add(id(fact))
        return facts

    def _happens(self, engine: Engine, record: Any, fact: DemoEvent) -> bool:
        if not fact.response:
            return True
        lead = f"{fact.row['source_channel']}:{fact.row['external_id']}"
        if lead not in self.clicked:  # the click: decided once, when it would happen
            try:
                reached = engine.leads.get_lead(engine.leads.find_lead(record.lead)).stage != Stage.NEW
            except HuokeError:
                reached = False
            self.clicked[lead] = reached
        return self.clicked[lead] or fact.unprompted

    def _click(self, engine: Engine, record: Any, fact: DemoEvent) -> bool:
        lead = f"{fact.row['source_channel']}:{fact.row['external_id']}"
        if lead in self.clicked:
            return self.clicked[lead]
        try:
            lead_id = engine.leads.find_lead(record.lead)
        except HuokeError:
            self.clicked[lead] = False
            return False
        code = self._latest_link(engine, lead_id)
        if code is None or self.clicks is None:
            self.clicked[lead] = False
            return False
        [followed] = self.clicks.follow([Click(code, "GET", BROWSER, fact.at)])
        self.clicked[lead] = followed.url is not None
        return self.clicked[lead]

    def _latest_link(self, engine: Engine, lead_id: UUID) -> str | None:
        """The code of the first tracked link of the latest message huoke wrote to the lead."""
        sends = [c.send_id for c in engine.deliveries.contact_log(lead_id).sends]
        for send_id in reversed(sends):
            found = _TRACKED.search(self._message_text(str(send_id)))
            if found:
                return found.group(1)
        return None

    def _message_text(self, send_id: str) -> str:
        assert self.outbox is not None  # noqa: S101 - set with clicks
        eml = self.outbox / "email" / f"{send_id}.eml"
        if eml.exists():
            return _email_text(eml)
        path = self.outbox / "sms.jsonl"
        if send_id not in self._sms and path.exists():
            with path.open(encoding="utf-8") as f:
                f.seek(self._sms_read)
                for line in f:
                    item = json.loads(line)
                    self._sms[item["send_id"]] = item["text"]
                self._sms_read = f.tell()
        return self._sms.get(send_id, "")

    def gateways(self, engine: Engine) -> int:
        """Mail gateways follow every tracked link of the e-mails that reached their users, within
        two seconds of arrival: recorded as scanner clicks, never engagement. The number followed."""
        if self.clicks is None or self.outbox is None or not (self.outbox / "email").exists():
            return 0
        batch = []
        for eml in (self.outbox / "email").glob("*.eml"):
            send_id = eml.stem
            if send_id in self._gated:
                continue
            self._gated.add(send_id)
            if int(hashlib.sha256(send_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF >= GATEWAY_SHARE:
                continue
            delivery = engine.deliveries.get_delivery(UUID(send_id))
            if delivery is None or delivery.sent_at is None:
                continue
            at = delivery.sent_at + timedelta(seconds=2)
            codes = dict.fromkeys(_TRACKED.findall(_email_text(eml)))
            batch += [Click(code, "GET", GATEWAY, at) for code in codes]
        return len(self.clicks.follow(batch)) if batch else 0


def _plain_progress(console: Console, quiet: bool, done: int, days: int) -> None:
    """Piped or logged (CI, ``make demo | tee``), no bar is drawn: a line every ten days instead."""
    if not quiet and not console.is_terminal and (done % 10 == 0 or done == days):
        console.print(f"simulated day {done} of {days}", highlight=False)


def _leads_by_day(
    s: Settings, leads: list[dict[str, Any]], start: datetime, tz: ZoneInfo
) -> tuple[dict[int, list[Any]], list[str]]:
    """Each valid row's capture command by the simulated day it arrives on, and the refused rows
    (the bad rows a real file has among them) with their line and problem."""
    by_day: dict[int, list[Any]] = defaultdict(list)
    refused: list[str] = []
    for line, row in enumerate([*leads, *bad_rows()], 2):
        try:
            cmd = LeadRow.model_validate(row).to_command(s.default_phone_region, tz, f"leads.csv:{line}")
        except (ValidationError, RowError) as problem:
            refused.append(f"leads.csv:{line}: {problem}".splitlines()[0])
            continue
        by_day[((cmd.captured_at or start) - start).days].append(cmd)
    return by_day, refused


def run_demo(s: Settings, n: int, days: int, folder: Path, quiet: bool, console: Console) -> dict[str, Any]:
    """Simulate ``days`` days: capture each day's leads and events, then run the engine to midnight."""
    tz = ZoneInfo(s.timezone)
    start = datetime(2026, 3, 2, 8, 0, tzinfo=tz)
    leads, events, book = _inputs(s, n, days, folder, start)
    started = time.perf_counter()
    clock = VirtualClock(start)
    init_database(s)  # set-up is explicit: tables, then the bundled journeys' first versions
    definitions = load_journey_definitions(s)
    # Both cores (HUOKE_CORES): a helper process takes most lead partitions in runs with enough
    # waiting work; it ends with the engine (closed below, or with this process).
    engine = with_helper(bootstrap(s, clock, definitions=definitions), s, clock, start=True)
    costs = import_costs(s, folder / "costs.csv", "demo", clock)  # finance's file of what marketing cost
    publish_new(engine, definitions.journeys, renderer_for(s).fingerprint(), "demo")
    # The credit scorecard learns from the lender's back book before the first lead arrives,
    # so every lead is pre-screened as it is captured.
    trained = [models.train(engine, "credit", read_csv(book, "bad", "funded_at", ["loan_id"]), "demo", False)]
    by_day_leads, refused = _leads_by_day(s, leads, start, tz)
    by_day_events: dict[int, list[Any]] = defaultdict(list)
    for line, fact in enumerate(events, 1):
        record = LifecycleRow.model_validate(fact.row).to_command(s.default_phone_region, tz, f"events.jsonl:{line}")
        by_day_events[(fact.at - start).days].append((record, fact))
    responses = _responses(s, engine)

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    ) as progress:
        task = progress.add_task("simulating days", total=days)
        for day in range(days):
            # Within a day, leads and lifecycle facts arrive in time order, the engine runs hourly.
            day_start = start + timedelta(days=day)
            arrivals = sorted(
                [(c.captured_at or day_start, 0, c) for c in by_day_leads.get(day, [])]
                + [(c.at or day_start, 1, (c, fact)) for c, fact in by_day_events.get(day, [])],
                key=lambda t: (t[0], t[1]),
            )
            for hour in range(24):
                cutoff = day_start + timedelta(hours=hour + 1)
                due = [a for a in arrivals if a[0] < cutoff]
                arrivals = arrivals[len(due) :]
                new_leads = [c for _, kind, c in due if kind == 0]
                facts = responses.happening(engine, [item for _, kind, item in due if kind == 1])
                if new_leads:
                    engine.capture_leads(new_leads)
                if facts:
                    engine.leads.record_lifecycle(facts)
                engine.run(until=cutoff)
                if hour == 17:
                    _officers_work(engine)
            responses.gateways(engine)
            progress.advance(task)
            _plain_progress(console, quiet, day + 1, days)
            if day + 1 == PROPENSITY_DAY and days > PROPENSITY_DAY:
                # Enough response history: learn who applies, and rescore everyone with it.
                trained.append(
                    models.train(engine, "propensity", models.dataset_from_store(engine, "propensity"), "demo")
                )
    # The lender's file of lifecycle facts holds what happened (not the clicks nobody prompted).
    write_events(folder, [e for e in events if id(e) not in responses.unreached])
    engine.refresh_views()
    emails, sms = _sent_counts(s, engine)
    example = next((r for r in leads if r["source_channel"] == "car_dealer" and r.get("email")), leads[0])
    doc = {
        "schema": "huoke.demo/1",
        "leads": n,
        "days": days,
        "clock_reached": clock.now().isoformat(),
        "lifecycle_events": len(events) - len(responses.unreached),
        "responses_without_contact": len(responses.unreached),
        "refused_rows": refused,
        "funnel": funnel_report(engine),
        "outbox": {"emails": emails, "sms": sms},
        "agent_tasks": len(tasks := engine.index.tasks()),
        "agent_tasks_by_status": {
            status: sum(t["status"] == status for t in tasks) for status in ("open", "assigned", "claimed")
        },
        "agent_tasks_escalated": sum(bool(t["escalations"]) for t in tasks),
        "agent_tasks_done": len(engine.index.tasks(include_done=True)) - len(tasks),
        "models": [{k: m[k] for k in ("kind", "version", "metrics", "training", "leads_rescored")} for m in trained],
        "uplift": _train_uplift(engine, leads),
        "score_bands": engine.screening.bands(),
        "segments": engine.screening.segment_sizes(),
        "held": engine.schedule.held(),
        "referrals": _referrals_summary(engine),
        "engagement": _engagement_summary(engine),
        "costs": {"entries": costs.created, "refused": len(costs.errors)},
        "example_lead": f"{example['source_channel']}:{example['external_id']}",
        "seconds": round(time.perf_counter() - started, 2),
    }
    engine.close()
    return doc


#: The journey whose random holdout the demo learns persuadability from.
UPLIFT_JOURNEY = "young-professionals"


def _train_uplift(engine: Engine, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Who is persuadable, learnt from the young professionals' 10% holdout, and what targeting by
    it gains over messaging at random. The later window's holdout is a few dozen leads at demo
    sizes, too few to measure the gain on; the simulation knows each lead's true uplift
    (``true_uplift``), so the gain is also measured against that truth: the share of all the extra
    applications messaging the journey's leads brings that the top 30% by predicted uplift bring."""
    try:
        data = models.dataset_from_store(engine, "uplift", UPLIFT_JOURNEY)
        doc = models.train(engine, "uplift", data, "demo", journey=UPLIFT_JOURNEY)
    except HuokeError as e:
        return {"journey": UPLIFT_JOURNEY, "skipped": str(e)}
    engine.refresh_views()
    kind = f"uplift:{UPLIFT_JOURNEY}"
    bands = {b["band"]: b["leads"] for b in engine.screening.bands() if b["kind"] == kind}
    enrolled = {a["lead_id"] for a in engine.funnel.split_assignments(UPLIFT_JOURNEY)}
    pairs = []  # (predicted, true) uplift of each lead the journey enrolled
    for row in rows:
        try:
            lead_id = engine.leads.find_lead(
                LeadRef(source_channel=row["source_channel"], external_id=row["external_id"])
            )
        except HuokeError:
            continue  # a refused row
        score = engine.leads.get_lead(lead_id).score_of(kind)
        if str(lead_id) in enrolled and score is not None:
            pairs.append((score.score or 0, true_uplift(row)))
    pairs.sort(key=lambda p: -p[0])
    top = pairs[: round(0.3 * len(pairs))]
    total = sum(t for _, t in pairs)
    captured = sum(t for _, t in top) / total if total else None
    return {"journey": UPLIFT_JOURNEY, "version": doc["version"], "metrics": doc["metrics"],
            "training": doc["training"], "leads_by_band": bands,
            "truth": {"leads": len(pairs), "top_30_share_of_extra_applications": captured}}  # fmt: skip


def _friends_by_code(s: Settings, leads: list[dict[str, Any]], events: list[Any], end: datetime, n: int) -> None:
    """Some early customers bring friends who quote their code (a few with fraud patterns)."""
    key = referral_key(s)

    def code_of(row: dict[str, Any]) -> str:
        return referral_code(key, lead_id_for(f"source:{row['source_channel']}:{row['external_id']}"))

    add_referrals(leads, events, code_of, end, referrers=max(3, n // 100))


def _sent_counts(s: Settings, engine: Engine) -> tuple[int, int]:
    """E-mails sent (as the funnel counts them) and SMS lines in the outbox."""
    path = s.outbox_dir / "sms.jsonl"
    sms = path.read_bytes().count(b"\n") if path.exists() else 0
    emails = sum(int(r["n"]) for r in engine.funnel.messages() if r["channel"] == "email" and r["outcome"] == "sent")
    return emails, sms


def _responses(s: Settings, engine: Engine) -> Responses:
    """The demo's people: with tracked links on, they click the links huoke sent them."""
    if engine.deliveries.tracker is None:
        return Responses()
    keys = [tracking_key(k) for k in (s.link_keys[0], *s.link_keys[1]) if k]
    return Responses(Clicks(engine.deliveries, keys, is_bot), s.outbox_dir)


def _engagement_summary(engine: Engine) -> dict[str, Any]:
    """Click-through per journey (people's unique clicks over messages sent), scanners apart."""
    doc = engagement_report(engine)
    journeys: dict[str, dict[str, int]] = defaultdict(lambda: {"sent": 0, "clicked": 0, "scanner_clicked": 0})
    for r in doc["steps"]:
        for k in ("sent", "clicked", "scanner_clicked"):
            journeys[r["journey_id"]][k] += r[k]
    return {
        "sent": doc["sent"],
        "clicked": doc["clicked"],
        "click_through_rate": doc["click_through_rate"],
        "scanner_clicked": doc["scanner_clicked"],
        "journeys": {
            j: {**c, "click_through_rate": round(c["clicked"] / c["sent"], 4) if c["sent"] else None}
            for j, c in sorted(journeys.items())
            if c["sent"]
        },
    }


def _referrals_summary(engine: Engine) -> dict[str, Any]:
    """Referrals by status, what was paid, and the rewards held for review (with why)."""
    rows = engine.ledger.ledger()
    by_status: dict[str, int] = defaultdict(int)
    for row in rows:
        by_status[row["status"]] += 1
    paid = [r for r in rows if r["status"] == "paid"]
    report = referrals_report(engine)["by_programme_month"]  # the figures report referrals shows
    funded = sum(r["funded"] for r in report)
    cost = sum(r["reward_cost"] for r in report)
    return {
        "referrals": sum(r["referrals"] for r in report),
        "funded": funded,
        "reward_cost": round(cost, 2),
        "cost_per_funded": round(cost / funded, 2) if funded else None,
        "by_status": dict(sorted(by_status.items())),
        "paid_cash": sum(float(r["referrer_reward"]["amount"]) for r in paid if r["referrer_reward"]["kind"] == "cash"),
        "held": [{"referral_id": r["referral_id"], "reasons": r["reasons"]} for r in rows if r["status"] == "held"],
    }


#: Calls a demo loan officer completes a day, and how calls end (by weight).
CALLS_A_DAY = 5
CALL_OUTCOMES = (
    ("reached", 50),
    ("no_answer", 25),
    ("callback_requested", 10),
    ("not_interested", 12),
    ("opted_out", 3),
)


def _officers_work(engine: Engine) -> None:
    """End of the working day: each officer completes the oldest tasks the desk routed to them,
    with outcomes that depend only on the task (the demo is reproducible)."""
    engine.refresh_views()
    done: dict[str, int] = defaultdict(int)
    for t in engine.index.tasks():
        officer = t["agent"] or t["routed_to"]
        if not officer or done[officer] >= CALLS_A_DAY:
            continue
        done[officer] += 1
        complete_task(engine, str(t["task_id"]), _outcome_of(t["task_id"]), "demo call", officer)


def _outcome_of(task_id: Any) -> str:
    pick = int(str(task_id).replace("-", ""), 16) % sum(w for _, w in CALL_OUTCOMES)
    for outcome, weight in CALL_OUTCOMES:
        if pick < weight:
            return outcome
        pick -= weight
    raise AssertionError("unreachable")  # pragma: no cover
