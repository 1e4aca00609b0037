"""Tracked links in rendered messages (``LinkTracker``): every http(s) link of an e-mail's HTML
(``href`` attributes, parsed by selectolax/lexbor, never by regular expressions) and of its text
part, and of an SMS, becomes ``<public url>/l/<code>``; the same destination in both parts of an
e-mail is the same link. Links that must reach huoke itself or stay the lead's own (unsubscribe,
confirmation, referral) and those a template marks ``| notrack`` are left as written. With opens
on, an HTML e-mail also carries a 1×1 open pixel (``/o/<code>``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from uuid import UUID

from selectolax.lexbor import LexborHTMLParser

from engine.adapters.templates import NOTRACK
from engine.application.ports import RenderedMessage
from engine.domain.delivery.tracking import LinkSigner, replace_links, text_links, tracked

#: Most links tracked in one message (a code holds the link's place in one byte; 0 is the pixel).
MAX_LINKS = 255


@dataclass(frozen=True)
class TrackedLinks:
    """Rewrites messages' links to ``base_url`` + ``/l/<code>`` (codes signed with ``key``)."""

    base_url: str
    key: bytes
    opens: bool = False
    signer: LinkSigner = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signer", LinkSigner(self.key))

    def session(self, send_id: UUID, untracked: Sequence[str]) -> LinkSession:
        return LinkSession(self, send_id, tuple(u for u in (*untracked, self.base_url + "/") if u))

    def track(
        self, send_id: UUID, channel: str, body: RenderedMessage, untracked: Sequence[str]
    ) -> tuple[RenderedMessage, tuple[str, ...]]:
        return self.session(send_id, untracked).finish(body)


@dataclass
class LinkSession:
    """One message's tracked links. The renderer hands every URL a template outputs to ``short``
    as it renders (no parsing); ``finish`` then looks for URLs the template wrote literally and
    only then parses the HTML (selectolax) and the text to rewrite them too."""

    tracker: TrackedLinks
    send_id: UUID
    skip: tuple[str, ...]
    #: destination -> short link, in order of first appearance (link 1 first).
    links: dict[str, str] = field(default_factory=dict)
    #: URLs the template output through ``short`` (tracked or not): when the rendered message
    #: holds no other, it needs no scan for literal ones.
    seen: int = 0

    def short(self, url: str) -> str:
        self.seen += 1
        if url.endswith(NOTRACK):  # ``| notrack``: as written (the renderer takes the mark out)
            return url
        found = self._short(url)
        return url if found is None else found

    def _short(self, url: str) -> str | None:
        url = url.strip()
        # ``tracked``, inlined: this runs for every URL of every message
        if not url.startswith(("http://", "https://")) or url.startswith(self.skip) or url.endswith(("/l/", "/o/")):
            return None
        if url not in self.links:
            if len(self.links) >= MAX_LINKS:
                return None
            self.links[url] = f"{self.tracker.base_url}/l/{self.tracker.signer.code(self.send_id, len(self.links) + 1)}"
        return self.links[url]

    def finish(self, body: RenderedMessage) -> tuple[RenderedMessage, tuple[str, ...]]:
        self.skip = (*self.skip, *(u for u in body.untracked if u))
        written = body.text.count("://") + (body.html or "").count("://") + (body.subject or "").count("://")
        if written == self.seen and not self.tracker.opens:  # every URL came through ``short``
            return body, tuple(self.links)
        html = body.html
        if html is not None and (self.tracker.opens or self._untouched(html)):
            html = self._html(html)
        text = body.text
        if self._untouched(text):
            for _, _, url in text_links(text):
                self._short(url)
            text = replace_links(text, self.links)
        return replace(body, text=text, html=html), tuple(self.links)

    def _untouched(self, text: str) -> bool:
        """Whether ``text`` still holds a URL that should be tracked (a template's literal one)."""
        return any(tracked(url, self.skip) for _, _, url in text_links(text))

    def _html(self, html: str) -> str:
        tree = LexborHTMLParser(html)
        changed = False
        for a in tree.tags("a"):  # not a CSS query: lexbor compiles a selector on every call
            url = (a.attrs.get("href") or "").strip()
            new = self._short(url) if url else None
            if new is not None:
                a.attrs["href"] = new
                changed = True
        if self.tracker.opens and tree.body is not None:
            code = self.tracker.signer.code(self.send_id, 0)
            pixel = f'<img src="{self.tracker.base_url}/o/{code}" width="1" height="1" alt="">'
            tree.body.insert_child(LexborHTMLParser(pixel).css_first("img"))  # type: ignore[arg-type]
            changed = True
        return str(tree.html) if changed and tree.html is not None else html
