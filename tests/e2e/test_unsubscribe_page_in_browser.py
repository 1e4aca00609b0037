"""The unsubscribe page as a browser shows it: headless Chromium loads it from `huoke serve`'s app."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from engine.adapters.clock import VirtualClock
from engine.application.delivery.links import LinkKeys
from engine.entrypoints.http import create_app
from tests.conftest import ROOT, MakeEngine
from tests.e2e.browser import CHROMIUM, FLAGS
from tests.e2e.smtp_server import serving
from tests.helpers import senior, young_pro

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed here")


@pytest.fixture
def served(make_engine: MakeEngine, clock: VirtualClock) -> Iterator[tuple[str, dict[str, str]]]:
    engine = make_engine(settings={"unsubscribe_secret": "s3cret"})
    english, chinese = young_pro(1, captured_at=clock.now()), senior(2)
    leads = engine.leads.capture_leads([english, chinese])
    paths = {
        lang: urlparse(engine.deliveries.unsubscribe_url(out.lead_id, "sms")).path  # type: ignore[arg-type]
        for lang, out in zip(("en", "zh-CN"), leads, strict=True)
    }
    with serving(create_app(engine, LinkKeys("s3cret"))) as base:
        yield base, paths


def chromium(tmp_path: Path, *args: str) -> str:
    return subprocess.run(  # type: ignore[no-any-return]
        [
            CHROMIUM,  # type: ignore[list-item]
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def test_the_unsubscribe_page_speaks_the_leads_language_and_fits_a_phone(
    served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, paths = served
    english = chromium(tmp_path, "--dump-dom", base + paths["en"])
    assert "Stop marketing text messages from Huoke Lending?" in english and "Unsubscribe</button>" in english
    assert "退订" not in english and 'lang="en"' in english
    chinese = chromium(tmp_path, "--dump-dom", base + paths["zh-CN"])
    assert "不再接收Huoke Lending的营销短信？" in chinese and "退订</button>" in chinese
    assert "Unsubscribe" not in chinese and 'lang="zh-CN"' in chinese
    # As a phone shows it (390 px wide): saved for people to look at.
    out = ROOT / "var" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    for lang, path in paths.items():
        shot = out / f"unsubscribe-{lang}.png"
        chromium(tmp_path, f"--screenshot={shot}", "--window-size=390,700", base + path)
        assert shot.stat().st_size > 5_000
