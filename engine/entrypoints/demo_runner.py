"""The main job: the bundled journeys over a realistic sample, 60 simulated days in seconds."""

from __future__ import annotations

import csv
import json
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from engine.adapters.clock import VirtualClock
from engine.adapters.model_data import read_csv
from engine.application.engine import Engine
from engine.application.journeys.publishing import publish_new
from engine.application.journeys.tasks import complete_task
from engine.application.reports import funnel_report
from engine.application.screening import models
from engine.bootstrap import bootstrap, init_database, load_journey_definitions, referral_key, renderer_for
from engine.domain.leads.identity import lead_id_for
from engine.domain.marketing.costs import COST_COLUMNS
from engine.domain.referrals.codes import referral_code
from engine.domain.shared.errors import HuokeError
from engine.domain.shared.values import Stage
from engine.entrypoints.demo_data import (
    BACK_BOOK_COLUMNS,
    DemoEvent,
    add_referrals,
    add_touches,
    back_book,
    bad_rows,
    demo_costs,
    generate,
)
from engine.entrypoints.importing import import_costs
from engine.entrypoints.schemas import LeadRow, LifecycleRow, RowError
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


class Responses:
    """Which generated responses happen in the simulation: a lead clicks only a link it was sent
    (the lender reached it first: its stage moved past new), so a holdout or an unreachable lead
    applies only as often as it would have unprompted, and split lift in the demo is real."""

    def __init__(self) -> None:
        self.clicked: dict[str, bool] = {}  # lead (source:external id) -> clicked a link it was sent
        self.unreached: set[int] = set()  # responses that did not happen (ids of their DemoEvents)

    def happening(self, engine: Engine, offered: list[tuple[Any, DemoEvent]]) -> list[Any]:
        facts = []
        for record, fact in offered:
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


def run_demo(s: Settings, n: int, days: int, folder: Path, quiet: bool, console: Console) -> dict[str, Any]:
    """Simulate ``days`` days: capture each day's leads and events, then run the engine to midnight."""
    tz = ZoneInfo(s.timezone)
    start = datetime(2026, 3, 2, 8, 0, tzinfo=tz)
    leads, events, book = _inputs(s, n, days, folder, start)
    started = time.perf_counter()
    clock = VirtualClock(start)
    init_database(s)  # set-up is explicit: tables, then the bundled journeys' first versions
    definitions = load_journey_definitions(s)
    engine = bootstrap(s, clock, definitions=definitions)
    costs = import_costs(s, folder / "costs.csv", "demo", clock)  # finance's file of what marketing cost
    publish_new(engine, definitions.journeys, renderer_for(s).fingerprint(), "demo")
    # The credit scorecard learns from the lender's back book before the first lead arrives,
    # so every lead is pre-screened as it is captured.
    trained = [models.train(engine, "credit", read_csv(book, "bad", "funded_at", ["loan_id"]), "demo", False)]
    by_day_leads: dict[int, list[Any]] = defaultdict(list)
    refused: list[str] = []
    for line, row in enumerate([*leads, *bad_rows()], 2):
        try:
            cmd = LeadRow.model_validate(row).to_command(s.default_phone_region, tz, f"leads.csv:{line}")
        except (ValidationError, RowError) as problem:
            refused.append(f"leads.csv:{line}: {problem}".splitlines()[0])
            continue
        day = ((cmd.captured_at or start) - start).days
        by_day_leads[day].append(cmd)
    by_day_events: dict[int, list[Any]] = defaultdict(list)
    for line, fact in enumerate(events, 1):
        record = LifecycleRow.model_validate(fact.row).to_command(s.default_phone_region, tz, f"events.jsonl:{line}")
        by_day_events[(fact.at - start).days].append((record, fact))
    responses = Responses()

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
                    engine.leads.capture_leads(new_leads)
                if facts:
                    engine.leads.record_lifecycle(facts)
                engine.run(until=cutoff)
                if hour == 17:
                    _officers_work(engine)
            progress.advance(task)
            if day + 1 == PROPENSITY_DAY and days > PROPENSITY_DAY:
                # Enough response history: learn who applies, and rescore everyone with it.
                trained.append(
                    models.train(engine, "propensity", models.dataset_from_store(engine, "propensity"), "demo")
                )
    # The lender's file of lifecycle facts holds what happened (not the clicks nobody prompted).
    write_events(folder, [e for e in events if id(e) not in responses.unreached])
    engine.refresh_views()
    outbox = s.outbox_dir
    sms = (outbox / "sms.jsonl").read_bytes().count(b"\n") if (outbox / "sms.jsonl").exists() else 0
    emails = sum(int(r["n"]) for r in engine.funnel.messages() if r["channel"] == "email" and r["outcome"] == "sent")
    example = next((r for r in leads if r["source_channel"] == "car_dealer" and r.get("email")), leads[0])
    return {
        "schema": "huoke.demo/1",
        "leads": n,
        "days": days,
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
        "score_bands": engine.screening.bands(),
        "segments": engine.screening.segment_sizes(),
        "held": engine.schedule.held(),
        "referrals": _referrals_summary(engine),
        "costs": {"entries": costs.created, "refused": len(costs.errors)},
        "example_lead": f"{example['source_channel']}:{example['external_id']}",
        "seconds": round(time.perf_counter() - started, 2),
    }


def _friends_by_code(s: Settings, leads: list[dict[str, Any]], events: list[Any], end: datetime, n: int) -> None:
    """Some early customers bring friends who quote their code (a few with fraud patterns)."""
    key = referral_key(s)

    def code_of(row: dict[str, Any]) -> str:
        return referral_code(key, lead_id_for(f"source:{row['source_channel']}:{row['external_id']}"))

    add_referrals(leads, events, code_of, end, referrers=max(3, n // 100))


def _referrals_summary(engine: Engine) -> dict[str, Any]:
    """Referrals by status, what was paid, and the rewards held for review (with why)."""
    rows = engine.ledger.ledger()
    by_status: dict[str, int] = defaultdict(int)
    for row in rows:
        by_status[row["status"]] += 1
    paid = [r for r in rows if r["status"] == "paid"]
    return {
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
