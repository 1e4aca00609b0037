"""The link rewriter and the click rules: every http(s) link rewritten once, the same one in both
parts of an e-mail the same link, opt-outs kept as written, entities and non-ASCII URLs intact
behind their codes; codes that are not huoke's never resolve; scanner clicks told apart."""

from __future__ import annotations

import html
from datetime import timedelta
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from engine.adapters.link_tracking import TrackedLinks
from engine.adapters.user_agents import is_bot
from engine.application.delivery.clicks import with_click_ref
from engine.application.ports import RenderedMessage
from engine.domain.delivery.tracking import (
    CODE_LENGTH,
    ClickKind,
    classify_click,
    link_code,
    read_code,
    text_links,
    tracking_key,
)
from engine.domain.leads.engagement import engagement_score

KEY = tracking_key("a-link-key-0123456789abcdefghijklmn")
BASE = "https://huoke.example"
TRACKER = TrackedLinks(BASE, KEY)

segment = st.text(alphabet=st.characters(categories=("L", "N"), max_codepoint=0x9FFF), min_size=1, max_size=8)
urls = st.builds(
    lambda host, path, q: f"https://{host}.example/{path}?q={q}&x=1",
    st.sampled_from(["lender", "partner", "shop"]),
    segment,
    segment,
)


@given(st.lists(urls, min_size=1, max_size=6))
def test_every_link_is_rewritten_once_and_resolves_to_what_was_rendered(destinations: list[str]) -> None:
    send_id = uuid4()
    anchors = "".join(f'<a href="{html.escape(u)}">{n}</a>' for n, u in enumerate(destinations))
    page = f"<html><body><p>{anchors}</p><a href='https://lender.example/unsubscribe/x'>u</a></body></html>"
    text = "\n".join(f"{u} ." for u in reversed(destinations))
    body, links = TRACKER.track(
        send_id, "email", RenderedMessage("s", text, page, "en", "en"), ["https://lender.example/unsubscribe"]
    )
    assert list(links) == list(dict.fromkeys(destinations))  # each destination once, in order
    hrefs = [a.attributes["href"] for a in LexborHTMLParser(body.html or "").css("a")]
    assert hrefs[-1] == "https://lender.example/unsubscribe/x"  # never tracked
    for href, url in zip(hrefs, destinations, strict=False):
        code = href.removeprefix(f"{BASE}/l/")  # type: ignore[union-attr]
        assert len(code) == CODE_LENGTH and read_code([KEY], code) == (send_id, links.index(url) + 1)
    shorts = [u for _, _, u in text_links(body.text)]
    assert sorted(set(shorts)) == sorted(set(hrefs[:-1]))  # type: ignore[type-var]  # the text part's links are the same links
    assert not any(u in body.text for u in destinations)


def test_notrack_links_and_huokes_own_pages_stay_as_written() -> None:
    body = RenderedMessage(
        None, "a https://x.example/a b https://huoke.example/r/CODE c https://y.example/keep", None, "en", "en",
        untracked=("https://y.example/keep",),
    )  # fmt: skip
    tracked, links = TRACKER.track(uuid4(), "sms", body, [])
    assert links == ("https://x.example/a",)
    assert "https://huoke.example/r/CODE" in tracked.text and "https://y.example/keep" in tracked.text


def test_a_code_resolves_only_with_huokes_key_and_unaltered() -> None:
    send_id = uuid4()
    code = link_code(KEY, send_id, 3)
    assert read_code([tracking_key("old-key-0123456789abcdefghijklmnopq"), KEY], code) == (send_id, 3)  # rotation
    assert read_code([tracking_key("another-key-0123456789abcdefghijklm")], code) is None
    flipped = code[:-1] + ("A" if code[-1] != "A" else "B")
    assert read_code([KEY], flipped) is None
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = code[:-1] + alphabet[alphabet.index(code[-1]) ^ 1]  # only the unused low bit differs
    assert read_code([KEY], spare) is None  # a second spelling of the same code is no code
    assert read_code([KEY], link_code(KEY, send_id, 3)[:-2] + "==") is None
    assert read_code([KEY], "é" * CODE_LENGTH) is None


def test_a_click_keeps_the_destinations_query_and_fragment_and_adds_its_reference() -> None:
    assert (
        with_click_ref("https://l.example/apply?a=1&hk=old#form", "CODE") == "https://l.example/apply?a=1&hk=CODE#form"
    )


def test_scanners_and_prefetchers_are_told_apart_from_people() -> None:
    person = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"
    recorded = {  # user agents seen following links in mail security products and previews
        "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))": True,
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.4266; Pro)": True,
        "Proofpoint URL Defense": True,
        "Mimecast Web Security": True,
        "python-requests/2.31.0": True,
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0": True,
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)": True,
        person: False,
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36": False,
    }  # fmt: skip
    assert {ua: is_bot(ua) for ua in recorded} == recorded
    late = timedelta(minutes=5)
    assert classify_click("GET", person, False, late).kind is ClickKind.HUMAN
    assert classify_click("HEAD", person, False, late).kind is ClickKind.SCANNER
    assert classify_click("GET", "", False, late).kind is ClickKind.SCANNER
    assert classify_click("GET", person, True, late).kind is ClickKind.SCANNER
    assert "2 s after the message left" in classify_click("GET", person, False, timedelta(seconds=2)).reason


def test_the_engagement_score_halves_every_fourteen_days() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 3, 30, tzinfo=UTC)
    assert engagement_score([now, now, now], now) == 3.0
    assert engagement_score([now - timedelta(days=14)], now) == 0.5
    assert engagement_score([now - timedelta(days=28), now + timedelta(days=1)], now) == 0.25  # the future: not yet
