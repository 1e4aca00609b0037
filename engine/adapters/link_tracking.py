"""Tracked links in rendered messages (``LinkTracker``): every http(s) link of an e-mail's HTML
(``href`` attributes, parsed by selectolax/lexbor, never by regular expressions) and of its text
part, and of an SMS, becomes ``<public url>/l/<code>``; the same destination in both parts of an
e-mail is the same link. Links that must reach huoke itself or stay the lead's own (unsubscribe,
confirmation, referral) and those a template marks ``| notrack`` are left as written. With opens
on, an HTML e-mail also carries a 1×1 open pixel (``/o/<code>``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from uuid import UUID

from selectolax.lexbor import LexborHTMLParser

from engine.application.ports import RenderedMessage
from engine.domain.delivery.tracking import link_code, replace_links, text_links, tracked

#: Most links tracked in one message (a code holds the link's place in one byte; 0 is the pixel).
MAX_LINKS = 255


@dataclass(frozen=True)
class TrackedLinks:
    """Rewrites messages' links to ``base_url`` + ``/l/<code>`` (codes signed with ``key``)."""

    base_url: str
    key: bytes
    opens: bool = False

    def track(
        self, send_id: UUID, channel: str, body: RenderedMessage, untracked: Sequence[str]
    ) -> tuple[RenderedMessage, tuple[str, ...]]:
        skip = (*untracked, *body.untracked, self.base_url + "/")
        links: dict[str, str] = {}  # destination -> short link, in order of first appearance

        def short(url: str) -> str | None:
            if not tracked(url, skip) or url.endswith(("/l/", "/o/")):
                return None
            if url not in links:
                if len(links) >= MAX_LINKS:
                    return None
                links[url] = f"{self.base_url}/l/{link_code(self.key, send_id, len(links) + 1)}"
            return links[url]

        html = self._html(body.html, short, send_id) if body.html is not None else None
        for _, _, url in text_links(body.text):
            short(url)
        text = replace_links(body.text, links)
        return replace(body, text=text, html=html), tuple(links)

    def _html(self, html: str, short: Callable[[str], str | None], send_id: UUID) -> str:
        tree = LexborHTMLParser(html)
        changed = False
        for a in tree.tags("a"):  # not a CSS query: lexbor compiles a selector on every call
            url = (a.attrs.get("href") or "").strip()
            new = short(url) if url else None
            if new is not None:
                a.attrs["href"] = new
                changed = True
        if self.opens and tree.body is not None:
            pixel = f'<img src="{self.base_url}/o/{link_code(self.key, send_id, 0)}" width="1" height="1" alt="">'
            tree.body.insert_child(LexborHTMLParser(pixel).css_first("img"))  # type: ignore[arg-type]
            changed = True
        return str(tree.html) if changed and tree.html is not None else html
