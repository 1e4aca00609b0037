"""Closed vocabularies and small value helpers shared by the domain."""

from __future__ import annotations

import sys
import uuid
from enum import StrEnum
from typing import Any

#: Namespace for every deterministic id huoke derives (DESIGN.md decision 3).
HUOKE_NAMESPACE = uuid.UUID("6f1c2b7e-8a4d-5e0f-9b3c-2d1e0f4a5b6c")


def derive_id(*parts: object) -> uuid.UUID:
    """Return a uuid5 over ``parts``; the same parts always give the same id."""
    return uuid.uuid5(HUOKE_NAMESPACE, "\x1f".join(str(p) for p in parts))


class SourceChannel(StrEnum):
    """Where a lead came from (DOMAIN.md pillar 2)."""

    WEB_FORM = "web_form"
    LOAN_PLATFORM = "loan_platform"
    PARTNER_ESTATE_AGENT = "partner_estate_agent"
    CAR_DEALER = "car_dealer"
    PARTNER_LENDER = "partner_lender"
    OFFLINE_FAIR = "offline_fair"
    COMMUNITY_EVENT = "community_event"
    PAST_BORROWER = "past_borrower"
    REFERRAL = "referral"
    BRANCH = "branch"


class Stage(StrEnum):
    """A lead's place in the lending funnel; forward-only except for LOST."""

    NEW = "new"
    CONTACTED = "contacted"
    ENGAGED = "engaged"
    APPLIED = "applied"
    APPROVED = "approved"
    FUNDED = "funded"
    LOST = "lost"


#: Funnel order; LOST is outside it.
STAGE_ORDER: tuple[Stage, ...] = (
    Stage.NEW,
    Stage.CONTACTED,
    Stage.ENGAGED,
    Stage.APPLIED,
    Stage.APPROVED,
    Stage.FUNDED,
)
#: The funnel's stages after capture, in order (the reports count the leads that reached each).
MILESTONES: tuple[str, ...] = tuple(s.value for s in STAGE_ORDER[1:])


def stage_rank(stage: Stage) -> int:
    """Position in the funnel; LOST ranks below NEW."""
    return -1 if stage is Stage.LOST else STAGE_ORDER.index(stage)


class Audience(StrEnum):
    """Who a lead is for messaging purposes: shapes tone, language and channel only."""

    YOUNG_PROFESSIONAL = "young_professional"
    SME = "sme"
    SENIOR = "senior"
    GENERAL = "general"


class Tier(StrEnum):
    """Financial standing by the seed's criteria (stability of income)."""

    PRIME = "prime"
    NEAR_PRIME = "near_prime"
    OTHER = "other"


class ConsentPurpose(StrEnum):
    """Why a lead may be contacted."""

    MARKETING = "marketing"
    SERVICE = "service"
    PARTNER_SHARING = "partner_sharing"
    #: Clicks on a channel's messages may be tracked (withdrawn: links go out as written).
    TRACKING = "tracking"


class ConsentChannel(StrEnum):
    """Channels consent is given or withdrawn for."""

    EMAIL = "email"
    SMS = "sms"
    PHONE = "phone"


def consent_key(channel: str, purpose: str) -> str:
    """How a lead's state keys a consent: ``"sms:marketing"`` (the one place the key is built;
    one string for every lead holding it)."""
    return sys.intern(f"{channel}:{purpose}")


class ApplicationStatus(StrEnum):
    """Where one loan application stands."""

    SUBMITTED = "submitted"
    APPROVED = "approved"
    DECLINED = "declined"
    FUNDED = "funded"


#: An application still going somewhere: a decline of another one does not lose the lead.
OPEN_APPLICATION = frozenset({ApplicationStatus.SUBMITTED, ApplicationStatus.APPROVED, ApplicationStatus.FUNDED})


class JourneyStatus(StrEnum):
    """A published journey takes leads only while live."""

    LIVE = "live"
    PAUSED = "paused"
    ARCHIVED = "archived"


class DeliveryOutcome(StrEnum):
    """How a message ended (a delivery still in flight has none yet)."""

    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class EmploymentType(StrEnum):
    """How a lead earns their income."""

    SALARIED = "salaried"
    FREELANCE = "freelance"
    SELF_EMPLOYED = "self_employed"
    BUSINESS_OWNER = "business_owner"
    RETIRED = "retired"
    STUDENT = "student"
    UNEMPLOYED = "unemployed"


class EmployerKind(StrEnum):
    """The kind of employer behind a salaried income."""

    GOVERNMENT = "government"
    STATE_OWNED = "state_owned"
    LARGE_PRIVATE = "large_private"
    SMALL_PRIVATE = "small_private"
    OWN_BUSINESS = "own_business"
    NONE = "none"


class LoanType(StrEnum):
    """Loan products a lead can be interested in (DOMAIN.md pillar 1)."""

    MORTGAGE = "mortgage"
    BUSINESS = "business"
    AUTO = "auto"
    CONSUMER = "consumer"
    RENOVATION = "renovation"
    AGRICULTURAL = "agricultural"


#: Bases that must never decide eligibility, offers or rates (DOMAIN.md, ECOA/Reg B, PIPL 24).
PROHIBITED_BASES: frozenset[str] = frozenset(
    {"age", "birth_year", "sex", "gender", "marital_status", "race", "religion", "national_origin"}
)

#: Plain JSON-compatible mapping used inside stored events (field names are schema).
JSONDict = dict[str, Any]
