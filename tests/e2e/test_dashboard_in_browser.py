"""The marketer's dashboard as a browser shows it: headless Chromium signs in through the form,
the page draws its charts with no console error, every table's numbers equal the API's report
documents on the same store, "sent" equals the outboxes, filters and CSV work, a phone shows it
without sideways scrolling, and a revoked key's session ends. Screenshots go to var/screenshots."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.adapters.clock import VirtualClock
from engine.application.access import Access
from engine.application.delivery.links import LinkKeys
from engine.application.engine import Engine
from engine.application.marketing import CostImport
from engine.bootstrap import access_for, marketing_for
from engine.bootstrap.reports import PAGE_REPORTS
from engine.domain.marketing.costs import CostLine, Period
from engine.entrypoints.http import create_app
from engine.presentation.dashboard import TABLES
from tests.application.test_marketing_reports import market
from tests.conftest import ROOT, MakeEngine, settings_of
from tests.e2e.browser import CHROMIUM, chromium_page
from tests.e2e.smtp_server import serving
from tests.helpers import TEST_LINK_KEY, emails, sms_lines

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed here")
SHOTS = ROOT / "var" / "screenshots"


@dataclass
class Served:
    base: str
    engine: Engine
    access: Access
    keys: dict[str, str]

    def api(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.keys['marketer']}"}
        request = urllib.request.Request(self.base + path, headers=headers)  # noqa: S310 - http on loopback
        with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310 - our own loopback server
            return json.load(r)


@pytest.fixture
def served(make_engine: MakeEngine, clock: VirtualClock) -> Iterator[Served]:
    engine = make_engine()
    settings = settings_of(engine)
    market(engine, clock)
    engine.run(until=clock.now() + timedelta(days=3))
    marketing = marketing_for(settings, clock)
    month = Period(clock.now().date().replace(day=1), clock.now().date().replace(day=28))
    lines = [CostLine(2, "partner", "BYD Chaoyang 4S", month, Decimal("1000"), "CNY"),
             CostLine(3, "event", "Shanghai Home Expo", month, Decimal("500"), "CNY")]  # fmt: skip
    marketing.record_costs(lines, "finance", CostImport("costs.csv"))
    marketing.close()
    access = access_for(settings, clock)
    keys = {role: access.create_key(f"{role}-1", role, "test")[1] for role in ("marketer", "agent")}
    app = create_app(engine, LinkKeys(TEST_LINK_KEY), api=(access, settings))
    with serving(app) as base:
        yield Served(base, engine, access, keys)
    access.close()


def sign_in(page: Any, base: str, key: str) -> None:
    page.go(base + "/dashboard/sign-in")
    page.send(
        "Runtime.evaluate", expression=f"document.getElementById('key').value = {key!r}; document.forms[0].submit()"
    )
    page.wait_for("Page.loadEventFired")


TABLE_CELLS = """[...document.querySelectorAll('table[data-table="%s"] tbody tr')]
  .map(tr => [...tr.cells].map(td => td.dataset.value))"""


def test_the_dashboard_shows_the_reports_numbers_on_a_laptop_and_a_phone(served: Served, tmp_path: Path) -> None:
    base = served.base
    with chromium_page(tmp_path / "profile") as page:
        page.viewport(1366, 900)
        page.go(base + "/dashboard")
        assert page.evaluate("location.pathname") == "/dashboard/sign-in"  # no session: sign in first
        sign_in(page, base, served.keys["agent"])
        assert "cannot open the dashboard" in page.evaluate("document.body.innerText")
        page.errors.clear()  # the browser logs that refusal (403) as a failed load
        sign_in(page, base, served.keys["marketer"])
        assert page.evaluate("location.pathname") == "/dashboard"
        charts = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('.chart')].map(e => [e.id, "
            "e.classList.contains('js-plotly-plot') ? 'drawn' : e.textContent]))"
        )
        assert {k for k, v in charts.items() if v == "drawn"} >= {"chart-funnel", "chart-daily", "chart-channels",
                                                                 "chart-flow"}  # fmt: skip
        assert set(charts.values()) <= {"drawn", "Nothing yet."}
        assert page.errors == []

        # Every table's cells are the report documents' values, as the API serves them.
        docs = {name: served.api(f"/api/v1/reports/{name}") for name in PAGE_REPORTS}
        for name, (_, rows_of, columns) in TABLES.items():
            expected = [["" if r.get(k) is None else str(r.get(k)) for k, _ in columns] for r in rows_of(docs)]  # type: ignore[arg-type]
            assert page.evaluate(TABLE_CELLS % name) == expected, name
        kpi = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('[data-kpi]')].map(e => [e.dataset.kpi, e.textContent]))"
        )
        assert kpi["leads"] == f"{docs['attribution']['total']['leads']:,}" == "9"
        # One truth: "sent" on the page is what reached the outboxes.
        outbox = settings_of(served.engine).outbox_dir
        assert int(kpi["sent"].replace(",", "")) == len(sms_lines(outbox)) + len(emails(outbox)) > 0

        # Filters and CSV downloads.
        page.go(base + "/dashboard?channel=car_dealer&touch=last")
        assert page.evaluate("document.querySelector('[data-kpi=leads]').textContent") == "4"
        csv_text = page.evaluate("fetch('/dashboard/csv/costs?channel=car_dealer').then(r => r.text())")
        assert csv_text.lstrip("\ufeff").splitlines()[0].startswith("kind,name,spend,leads")
        assert "BYD Chaoyang 4S,1000.0,4" in csv_text
        page.go(base + "/dashboard?since=2026-13-01")
        assert "Filter not applied — since: expected a day" in page.evaluate("document.body.innerText")
        page.go(base + "/dashboard?journey=young-profesionals")
        assert "Filter not applied — journey: no journey 'young-profesionals' was published" in page.evaluate(
            "document.body.innerText"
        )
        page.go(base + "/dashboard")
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        sideways = "[...document.querySelectorAll('.scroll')].filter(e => e.scrollWidth > e.clientWidth).length"
        assert page.evaluate(sideways) == 0  # on a laptop every table fits: headings wrap, verdicts wrap
        assert page.evaluate(  # numbers, their headings and their empty cells align right
            "[...document.querySelectorAll('[data-table=experiments] th')].filter(t => t.classList.contains('n'))"
            ".map(t => t.textContent)"
        ) == ["leads", "rate", "control", "lift"]  # intervals are text ("+1.2 to +4.5"): left
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(SHOTS / "dashboard-laptop.png")

        page.viewport(390, 844, mobile=True)
        page.go(base + "/dashboard")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling
        page.screenshot(SHOTS / "dashboard-phone.png", full_page=False)
        assert page.errors == []

        # A revoked key's session ends at once.
        served.access.revoke("marketer-1", "test", "left the team")
        page.go(base + "/dashboard")
        assert page.evaluate("location.pathname") == "/dashboard/sign-in"
    assert (SHOTS / "dashboard-laptop.png").stat().st_size > 50_000
    assert (SHOTS / "dashboard-phone.png").stat().st_size > 20_000
