"""The dashboard's journey page as a browser shows it: the live version's graph drawn by Plotly
(from the package) with a node per step and no console error, the steps table equal to the flows
report of the API, the versions with who published them, the folder's draft with what changed,
and a preview of the live version and of the draft for a chosen lead that sends nothing."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.adapters.clock import VirtualClock
from engine.application.delivery.links import LinkKeys
from engine.bootstrap import access_for
from engine.entrypoints.http import create_app
from tests.application.test_marketing_reports import market
from tests.conftest import ROOT, MakeEngine, settings_of
from tests.e2e.browser import CHROMIUM, chromium_page
from tests.e2e.smtp_server import serving
from tests.e2e.test_dashboard_in_browser import SHOTS, Served, sign_in
from tests.helpers import emails, sms_lines

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed here")
JOURNEY = "young-professionals"


@pytest.fixture
def served(make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path) -> Iterator[Served]:
    engine = make_engine()
    market(engine, clock)
    engine.run(until=clock.now() + timedelta(days=3))
    # The journeys folder holds a draft: the live journey with its first wait shortened.
    folder = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys", folder)
    path = folder / "young_professionals.yaml"
    text = path.read_text()
    assert "    wait: 3d\n" in text
    path.write_text(text.replace("    wait: 3d\n", "    wait: 2d\n", 1))
    settings = settings_of(engine).model_copy(update={"journeys_dir": folder})
    access = access_for(settings, clock)
    keys = {"marketer": access.create_key("marketer-1", "marketer", "test")[1]}
    app = create_app(engine, LinkKeys(*settings.link_keys), api=(access, settings))  # the keys the engine signs with
    with serving(app) as base:
        yield Served(base, engine, access, keys)
    access.close()


def cells(page: Any, table: str) -> list[list[str]]:
    return list(
        page.evaluate(
            f"[...document.querySelectorAll('table[data-table={table}] tbody tr')]"
            ".map(tr => [...tr.cells].map(td => td.textContent))"
        )
    )


def test_the_journey_page_draws_the_graph_counts_versions_and_previews(served: Served, tmp_path: Path) -> None:
    base, outbox = served.base, settings_of(served.engine).outbox_dir
    sent_before = (len(emails(outbox)), len(sms_lines(outbox)))
    with chromium_page(tmp_path / "profile") as page:
        page.viewport(1366, 900)
        sign_in(page, base, served.keys["marketer"])
        assert JOURNEY in page.evaluate("[...document.querySelectorAll('nav.journeys a')].map(a => a.textContent)")
        page.go(f"{base}/dashboard/journeys/{JOURNEY}")
        live = served.engine.journeys.live[JOURNEY]
        assert page.evaluate("document.getElementById('chart-journey').classList.contains('js-plotly-plot')")
        assert page.evaluate("document.getElementById('chart-journey').dataset.steps") == str(len(live.journey.steps))
        drawn = page.evaluate("document.querySelectorAll('#chart-journey .scatterlayer .point').length")
        assert drawn == len(live.journey.steps)
        assert page.errors == []

        # The steps table is the flows report of the API, step by step.
        [flow] = served.api(f"/api/v1/reports/flows?journey={JOURNEY}")["journeys"]
        expected = [[s["step"], s["kind"], *(f"{s[k]:,}" for k in ("active", "reached", "sent", "skipped", "failed",
                                                                  "clicked"))] for s in flow["steps"]]  # fmt: skip
        assert cells(page, "steps") == expected
        assert sum(s["reached"] for s in flow["steps"]) > 0  # the market's leads went through it
        [v1] = cells(page, "versions")
        assert v1[0] == "v1 (live)" and v1[3] == "first version" and v1[4].endswith("young_professionals.yaml")

        # The folder's file differs: the page says so and what changed.
        draft_text = page.evaluate("document.getElementById('draft').innerText")
        assert "differs from v1" in draft_text and "changed" in draft_text

        # A preview for a lead of the market (dealer 2), of the live version, then of the draft.
        page.go(f"{base}/dashboard/journeys/{JOURNEY}?lead=car_dealer:car-2")
        assert page.evaluate("document.getElementById('preview').dataset.entered") == "true"
        live_path = page.evaluate("[...document.querySelectorAll('#preview .path li')].map(l => l.innerText)")
        messages = page.evaluate("document.querySelectorAll('#preview .message').length")
        assert live_path and messages > 0
        texts = page.evaluate("[...document.querySelectorAll('#preview .message pre')].map(p => p.textContent)")
        assert any(t.startswith("Hi Alex") for t in texts)  # rendered for this lead, in its language
        links = {m.group(1) for t in texts for m in re.finditer(r"https?://[^/\s]+(/unsubscribe/\S+)", t)}
        statuses = [page.evaluate(f"fetch({link!r}).then(r => r.status)") for link in sorted(links)]
        assert links and statuses == [404] * len(links)  # signed with a throwaway key: never the real lead's
        page.errors.clear()  # the browser logs that 404
        page.go(f"{base}/dashboard/journeys/{JOURNEY}?lead=car_dealer:car-2&draft=true")
        assert "The draft for this lead" in page.evaluate("document.getElementById('preview').innerText")
        draft_path = page.evaluate("[...document.querySelectorAll('#preview .path li')].map(l => l.innerText)")
        assert draft_path != live_path  # the shorter wait moves what follows it
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(SHOTS / "journey-page.png")

        page.go(f"{base}/dashboard/journeys/{JOURNEY}?lead=car_dealer:nobody")
        assert page.evaluate("document.querySelector('[role=alert]').textContent")
        page.go(f"{base}/dashboard/journeys/no-such-journey")
        assert "No published journey no-such-journey" in page.evaluate("document.body.innerText")
        page.errors.clear()  # the browser logs the 404 as a failed load

        page.viewport(390, 844, mobile=True)
        page.go(f"{base}/dashboard/journeys/{JOURNEY}")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert page.errors == []
    # Previews and the page send nothing and leave the timeline and reports as they were.
    assert (len(emails(outbox)), len(sms_lines(outbox))) == sent_before
    assert served.api(f"/api/v1/reports/flows?journey={JOURNEY}")["journeys"] == [flow]
    assert (SHOTS / "journey-page.png").stat().st_size > 30_000
