"""Everything a Lead knows, typed: the one list of its state (what its snapshots would hold),
which the Lead and each of its rule mixins read."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any
from uuid import UUID

from engine.domain.leads.records import Loan, Offer, ScoreRecord
from engine.domain.shared.values import Audience, JSONDict, Stage, Tier


def shared_keys(values: JSONDict, texts: bool = True) -> JSONDict:
    """``values`` with its keys (and, with ``texts``, its short text values, nested too) interned:
    the leads in memory share one "monthly_income", "CNY" or "Asia/Shanghai" instead of each
    holding its own (a cached lead takes 5.8 KB instead of 7.7). Personal values are not shared."""
    return {
        sys.intern(k): shared_keys(v, texts)
        if isinstance(v, dict)
        else sys.intern(v)
        if texts and isinstance(v, str) and len(v) <= 16
        else v
        for k, v in values.items()
    }


#: The empty set each of a lead's sets starts as: one object for every lead (an empty set takes
#: 216 bytes, a lead has four and most stay empty; Python has no shared empty frozenset since
#: 3.10). The sets are frozen: adding makes a new one.
EMPTY: frozenset[Any] = frozenset()


class LeadState:
    """A lead's state, as its events left it.

    Every attribute a lead always has is a slot: a cached lead takes 1.3 KB less than with them
    in its ``__dict__``, which CPython stops sharing between instances beyond 30 keys (a lead
    has 33). The aggregate's own attributes and the rarely set ones below stay in the dict."""

    __slots__ = (
        "application_types",
        "applications",
        "audience",
        "captured_at",
        "clicked_links",
        "clicks",
        "consents",
        "contact",
        "contact_issues",
        "first_applied_at",
        "interest",
        "last_applied_at",
        "last_declined_at",
        "last_funded_at",
        "last_missed_at",
        "loans",
        "missed_repayments",
        "offer",
        "pending_consents",
        "profile",
        "referral_news",
        "scores",
        "segments",
        "source",
        "stage",
        "tags",
        "tier",
        "withdrawn_at",
    )

    source: JSONDict
    contact: JSONDict
    profile: JSONDict
    interest: JSONDict
    contact_issues: list[str]
    captured_at: datetime
    stage: Stage
    audience: Audience
    tier: Tier
    segments: tuple[str, ...]
    consents: dict[str, bool]
    pending_consents: frozenset[str]
    #: When each consent was last withdrawn (a confirmation link older than that grants nothing).
    withdrawn_at: dict[str, datetime]
    #: The person's clicks on tracked links (the latest ``KEPT_CLICKS``: the engagement score).
    clicks: list[datetime]
    clicked_links: frozenset[tuple[UUID, int]]
    applications: dict[str, str]
    missed_repayments: int
    tags: frozenset[str]
    #: Referral news already recorded on this lead (each once).
    referral_news: frozenset[str]
    offer: Offer | None
    last_applied_at: datetime | None
    last_funded_at: datetime | None
    first_applied_at: datetime | None
    last_declined_at: datetime | None
    last_missed_at: datetime | None
    application_types: dict[str, str]
    loans: dict[str, Loan]
    scores: dict[str, ScoreRecord]
    #: The attribution key of every source the lead came through after the first (see ``touch``).
    touches: tuple[str, ...] = ()
    #: "section.field=value" of every conflict recorded (so a re-import records none again).
    conflicts: tuple[str, ...] = ()
    #: Erased on request: personal data unreadable, nothing personal recorded again.
    erased: bool = False

    def start(
        self,
        source: JSONDict,
        contact: JSONDict,
        profile: JSONDict,
        interest: JSONDict,
        contact_issues: list[str],
        captured_at: datetime,
    ) -> None:
        """The state of a lead just captured."""
        self.source = shared_keys(source)
        self.contact = shared_keys(contact, texts=False)
        self.profile = shared_keys(profile)
        self.interest = shared_keys(interest)
        self.contact_issues = list(contact_issues)
        self.captured_at = captured_at
        self.stage = Stage.NEW
        self.audience = Audience.GENERAL
        self.tier = Tier.OTHER
        self.segments = ()
        self.consents = {}
        self.pending_consents = EMPTY
        self.withdrawn_at = {}
        self.clicks = []
        self.clicked_links = EMPTY
        self.applications = {}
        self.missed_repayments = 0
        self.tags = EMPTY
        self.referral_news = EMPTY
        self.offer = None
        self.last_applied_at = None
        self.last_funded_at = None
        self.first_applied_at = None
        self.last_declined_at = None
        self.last_missed_at = None
        self.application_types = {}
        self.loans = {}
        self.scores = {}
