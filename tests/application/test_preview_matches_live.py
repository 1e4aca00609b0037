"""A preview tells the truth: for every bundled journey and a set of leads (a young professional,
a senior, a small-business owner), the path a preview shows — entry or refusal, each step, branch
and wait, every message and the moment it leaves — is the path the same lead takes live, on the
virtual clock, with no other event between. Journeys entered on an application or a funding are
compared with a live run that records the same facts the preview does."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from engine.adapters.clock import VirtualClock
from engine.application.journeys.preview import entry_facts, journey_path, live_preview
from engine.application.leads.commands import CaptureLead
from engine.bootstrap import sandbox
from engine.domain.journeys.journey import Journey
from tests.conftest import START, MakeEngine, base_settings
from tests.helpers import senior, young_pro

DAYS = 12


def sme_owner() -> CaptureLead:
    return young_pro(
        40,
        source={"channel": "partner", "external_id": "SME-40"},
        profile={"birth_year": 1980, "employment_type": "self_employed", "employer_kind": "own_business",
                 "monthly_income": "60000", "business_years": "6", "business_revenue": "3000000",
                 "industry": "retail"},
        interest={"loan_type": "business", "amount": "500000", "term_months": 24},
    )  # fmt: skip


def test_every_bundled_journey_previews_the_path_a_lead_takes_live(make_engine: MakeEngine, tmp_path: Path) -> None:
    t0 = START
    leads = [dataclasses.replace(c, captured_at=t0) for c in (young_pro(1), senior(1), sme_owner())]
    probe = make_engine(clock=VirtualClock(t0), settings={"data_dir": tmp_path / "probe"})
    journeys: dict[str, tuple[Journey, dict[str, Any]]] = {
        jid: (lj.journey, lj.publication.versions[lj.version])  # type: ignore[union-attr]
        for jid, lj in probe.journeys.live.items()
    }
    # The journeys grouped by the facts their entry needs (none for most): one live run per group.
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for jid, (journey, _) in sorted(journeys.items()):
        groups[tuple(f.kind for f in entry_facts(journey, leads[0], UUID(int=0), t0))].append(jid)
    assert len(groups) >= 3  # on capture, on an application, on a funding
    entered = compared = events = sent = 0
    for n, jids in enumerate(groups.values()):
        folder = tmp_path / f"live-{n}"
        live = make_engine(clock=VirtualClock(t0), settings={"data_dir": folder / "data", "outbox_dir": folder / "out"})
        outs = live.leads.capture_leads(leads)
        for lead, out in zip(leads, outs, strict=True):
            assert out.lead_id is not None
            facts = entry_facts(journeys[jids[0]][0], lead, out.lead_id, t0)
            if facts:  # what the preview records, recorded live at the same moment
                live.leads.record_lifecycle(facts)
        live.run(until=t0 + timedelta(days=DAYS))
        live.refresh_views()
        for jid in jids:
            journey, raw = journeys[jid]
            for lead, out in zip(leads, outs, strict=True):
                assert out.lead_id is not None
                real = journey_path(live, out.lead_id, jid)
                settings = base_settings(tmp_path / f"preview-{jid}-{n}-{out.lead_id}")
                with sandbox(settings, journey, raw, t0, list(journeys.values())) as (scratch, recorded):
                    seen = live_preview(scratch, recorded, journey, lead, DAYS)
                assert seen["path"] == real, (jid, lead.source)
                entered += bool(seen["entered"])
                events += len(real)
                sent += sum(p["event"] == "Delivery.Sent" for p in real)
                compared += 1
    assert compared == len(journeys) * len(leads)
    assert entered >= 6  # the audiences' journeys and the application and funding journeys had leads
    assert events > 50 and sent > 5
