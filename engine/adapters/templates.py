"""Jinja2 renderer: sandboxed, strict, autoescaped HTML, with audience and locale fallback.

Layout: templates/<channel>/<name>/<variant>.<part>.j2 where variant is
"<audience>.<locale>" or "<locale>"; e-mail parts are subject, txt and html, SMS has txt.
Every e-mail is wrapped in templates/email/_layout/<locale>.{txt,html}.j2 (postal address and
unsubscribe link) and every SMS in templates/sms/_layout/<locale>.txt.j2 (opt-out line), so the
compliance footer cannot be forgotten by a template author.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    meta,
    nodes,
    pass_context,
)
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from engine.application.journeys.catalog import TemplateReport
from engine.application.ports import TRACK_CONTEXT, RenderedMessage, RenderError

PARTS = {"email": ("subject", "txt", "html"), "sms": ("txt",), "webhook": ("txt",)}
#: What the ``notrack`` filter puts after a URL (an invisible separator), taken out after rendering.
NOTRACK = "\u2063"
_SPACE = re.compile(r"\s")
_UNTRACKED = re.compile(r"(https?://[^\s<>\"']+?)" + NOTRACK)
#: Jinja tags and expressions (removed before looking at what a template's own text states).
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
#: A rate stated in a template's text: a percentage figure, or the words for a rate or APR.
_RATE = re.compile(r"\d+(?:[.,]\d+)?\s*%|\b(?:APR|interest rate|rates?)\b|年化|利率|费率", re.I)


@dataclass(frozen=True)
class _Read:
    names: set[str]
    guarded: set[str]
    rates: list[str]


def _guarded(ast: nodes.Template) -> set[str]:
    """Variables read only inside ``{% if x is defined %}`` (or in that test itself): a lead may
    lack them and the template still renders."""
    uses: dict[str, list[bool]] = {}

    def walk(node: nodes.Node, guards: frozenset[str]) -> None:
        if isinstance(node, nodes.If):
            tests = [node.test, *node.test.find_all(nodes.Test)]  # find_all skips the node itself
            tested = frozenset(
                t.node.name
                for t in tests
                if isinstance(t, nodes.Test) and t.name == "defined" and isinstance(t.node, nodes.Name)
            )
            walk(node.test, guards | tested)
            for child in node.body:
                walk(child, guards | tested)
            for child in [*node.elif_, *node.else_]:
                walk(child, guards)
            return
        if isinstance(node, nodes.Name) and node.ctx == "load":
            uses.setdefault(node.name, []).append(node.name in guards)
        for child in node.iter_child_nodes():
            walk(child, guards)

    walk(ast, frozenset())
    return {name for name, guarded in uses.items() if all(guarded)}


@pass_context
def _track_urls(ctx: Context, value: Any) -> Any:
    """Every ``{{ … }}`` a template outputs passes here: a URL (from a journey variable, say) is
    handed to the message's tracked-link session, when it has one, which gives back its short
    link (or the URL itself, when it is not tracked). A template's literal URLs are caught after
    rendering (``TrackedLinks.finish``)."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")) or _SPACE.search(value):
        return value  # most of what a template outputs (and a whole body or sentence): not one URL
    track = ctx.get(TRACK_CONTEXT)
    return value if track is None else track(value)


def _template_line(error: BaseException, root: Path) -> str:
    """``templates/email/x/en.txt.j2:3: `` — where in which template a rendering failed (Jinja
    rewrites tracebacks so their frames name the template's own lines); '' when unknown."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.endswith(".j2")]
    if not frames:
        return ""
    frame = frames[-1]
    name = Path(frame.filename)
    shown = name.relative_to(root.parent) if name.is_relative_to(root.parent) else name
    return f"{shown}:{frame.lineno}: "


#: A folder changed this long ago has its variants looked up again whatever its mtime says: a
#: file system stamps times at its clock's tick (a few ms), so two changes may share one.
SETTLED_NS = 2_000_000_000


class JinjaRenderer:
    """Renders message templates from a folder; compiled templates are cached."""

    def __init__(self, root: Path, default_locale: str = "zh-CN") -> None:
        self.root = root
        self.default_locale = default_locale
        #: (channel, template, audience, locale) -> the template folder's mtime and the variant
        #: ``resolve`` found in it (a file added, renamed or removed there changes the mtime).
        self._resolved: dict[tuple[str, str, str, str], tuple[int, str | None]] = {}
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(str(root)),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html.j2")),
            cache_size=2000,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            finalize=_track_urls,
        )
        # ``{{ url | notrack }}``: this link goes out as written, never as a tracked link.
        self.env.filters["notrack"] = lambda url: f"{url}{NOTRACK}"
        #: Each thread's templates held by ``holding`` (absent: every use asks Jinja, which
        #: looks at the file's modification time each time).
        self._held = threading.local()

    @contextmanager
    def holding(self) -> Iterator[None]:
        """While open (in this thread), each template is read as it was when first used in it:
        a dispatcher's pass renders all its messages from the same files, and Jinja is not asked
        whether a file changed for every part of every message (a stat each: 31% of rendering's
        time in a one-process bench run). An edit counts from the next pass."""
        outer = getattr(self._held, "templates", None)
        if outer is None:
            self._held.templates = {}
        try:
            yield
        finally:
            if outer is None:
                del self._held.templates

    # ---- rendering -------------------------------------------------------------------------

    def render(
        self, channel: str, template: str, audience: str, locale: str, context: dict[str, Any]
    ) -> RenderedMessage:
        variant = self.resolve(channel, template, audience, locale)
        if variant is None:
            raise RenderError(f"no {channel} template {template!r} for {locale} or {self.default_locale}")
        used_locale = variant.split(".")[-1]
        ctx = {**context, "locale": used_locale}
        try:
            parts = {part: self._render(f"{channel}/{template}/{variant}.{part}.j2", ctx) for part in PARTS[channel]}
            if channel == "webhook":
                return self._webhook(parts["txt"], used_locale, variant)
            text = self._render(f"{channel}/_layout/{used_locale}.txt.j2", {**ctx, "body": parts["txt"]})
            html = None
            if "html" in parts:
                # The body was rendered by the autoescaping sandbox: it is safe HTML already.
                body = Markup(parts["html"])  # noqa: S704
                html = self._render(f"{channel}/_layout/{used_locale}.html.j2", {**ctx, "body": body})
        except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as e:
            # A template's mistake (or a sandbox refusal: unsafe attribute, a range over 100,000)
            # fails this message with the reason, never the worker.
            where = _template_line(e, self.root)
            raise RenderError(f"{where}{type(e).__name__}: {str(e)[:300]}") from e
        subject = " ".join(parts["subject"].split()) if "subject" in parts else None
        found = _UNTRACKED.findall(text) + [unescape(u) for u in _UNTRACKED.findall(html or "")]
        return RenderedMessage(
            subject=subject.replace(NOTRACK, "") if subject else subject,
            text=text.replace(NOTRACK, "").strip() + "\n",
            html=html.replace(NOTRACK, "") if html else html,
            locale=used_locale,
            variant=variant,
            untracked=tuple(dict.fromkeys(found)),
        )

    @staticmethod
    def _webhook(body: str, locale: str, variant: str) -> RenderedMessage:
        """A webhook body is JSON (use the tojson filter for values); refuse anything else."""
        try:
            json.loads(body)
        except ValueError as e:
            raise RenderError(f"webhook body is not JSON ({e}); use {{{{ value|tojson }}}}") from e
        return RenderedMessage(subject=None, text=body, html=None, locale=locale, variant=variant)

    def _render(self, name: str, ctx: dict[str, Any]) -> str:
        held: dict[str, Template] | None = getattr(self._held, "templates", None)
        if held is None:
            return self.env.get_template(name).render(ctx)
        template = held.get(name)
        if template is None:
            template = held[name] = self.env.get_template(name)
        return template.render(ctx)

    def resolve(self, channel: str, template: str, audience: str, locale: str) -> str | None:
        """The most specific variant present: audience+locale, locale, then the default locale.
        Looked up again only when the template's folder changed, or changed in the last
        ``SETTLED_NS`` (one stat a message instead of up to four: 89 µs a message went to finding
        its variant)."""
        folder = os.path.join(self.root, channel, template)
        try:
            changed = os.stat(folder).st_mtime_ns
        except OSError:
            return None
        key = (channel, template, audience, locale)
        known = self._resolved.get(key)
        if known is not None and known[0] == changed and time.time_ns() - changed > SETTLED_NS:
            return known[1]
        variants = (f"{audience}.{locale}", locale, f"{audience}.{self.default_locale}", self.default_locale)
        found = next((v for v in variants if os.path.isfile(os.path.join(folder, f"{v}.txt.j2"))), None)
        self._resolved[key] = (changed, found)
        return found

    # ---- validation ------------------------------------------------------------------------

    def check(self, channel: str, template: str, locales: tuple[str, ...]) -> TemplateReport:
        """Problems with a template in every promised locale, the variables it reads, and where
        its text states a rate."""
        problems: list[str] = []
        used: set[str] = set()
        unguarded: set[str] = set()
        rates: list[str] = []
        folder = self.root / channel / template
        if not folder.is_dir():
            return TemplateReport([f"unknown {channel} template {template!r} (no folder {folder})"])
        variants = {p.name.split(".txt.j2")[0] for p in folder.glob("*.txt.j2")}
        for locale in locales:
            if locale not in variants:
                problems.append(f"{channel} template {template!r} has no {locale} version")
        for variant in sorted(variants):
            for part in PARTS[channel]:
                name = f"{channel}/{template}/{variant}.{part}.j2"
                try:
                    read = self._read(name)
                except RenderError as e:
                    problems.append(str(e))
                    continue
                if read is None:
                    problems.append(f"{name} is missing")
                    continue
                used |= read.names
                unguarded |= read.names - read.guarded
                rates += [f"{variant}.{part}: {found!r}" for found in read.rates]
        for locale in locales if channel != "webhook" else ():
            for part in ("txt", "html") if channel == "email" else ("txt",):
                name = f"{channel}/_layout/{locale}.{part}.j2"
                layout = self._read(name)
                if layout is None:
                    problems.append(f"{name} (compliance footer) is missing")
                    continue
                used |= layout.names - {"body"}
        return TemplateReport(problems, used, used - unguarded, rates)

    def _read(self, name: str) -> _Read | None:
        """A template's variables (and those read only under ``{% if x is defined %}``) and the
        rates its text states; None when there is no such file."""
        try:
            source, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
        except TemplateNotFound:
            return None
        try:
            ast = self.env.parse(source)
        except TemplateError as e:
            raise RenderError(f"{name}:{getattr(e, 'lineno', 0) or 0}: template syntax: {e}") from e
        names = set(meta.find_undeclared_variables(ast)) - {"locale"}
        return _Read(names, _guarded(ast) & names, _RATE.findall(_JINJA.sub(" ", source)))

    def fingerprint(self) -> str:
        """Hash of every template file: recorded with each published journey version."""
        h = hashlib.sha256()
        for path in sorted(self.root.rglob("*.j2")):
            h.update(str(path.relative_to(self.root)).encode())
            h.update(path.read_bytes())
        return h.hexdigest()[:16]
