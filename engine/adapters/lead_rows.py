"""Wire schemas: rows of lead and lifecycle files, validated before any command is made.

A row's problems name its field; the importer adds the file and line. Contact details are
checked with phonenumbers and email-validator: an invalid one is dropped and flagged on the
lead (contact_issues), and a row left with no way to reach the lead is refused.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import timezone as phone_timezone
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.application.importing import Parse, RowError
from engine.application.leads.commands import CaptureLead, LeadRef, LifecycleKind, RecordLifecycle
from engine.domain.shared.values import EmployerKind, EmploymentType, LoanType, SourceChannel, Stage

_TRUE = {"1", "true", "yes", "y", "t", "是"}
_FALSE = {"0", "false", "no", "n", "f", "否", ""}


#: Longest text a field may hold (a name, an employer, a purpose in the lead's words).
MAX_TEXT = 1000
#: Characters that reorder or hide text (Trojan Source), stripped from every text field.
_DIRECTION = dict.fromkeys(
    [0x061C, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0xFEFF, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)


def clean_text(value: Any) -> Any:
    """Text as a person typed it: control characters (NUL, escapes, line breaks) and direction
    or invisible formatting characters removed, so they never reach a subject line or a terminal."""
    if not isinstance(value, str):
        return value
    text = value if value.isascii() else value.translate(_DIRECTION)  # those characters are not ASCII
    if text.isprintable():  # most cells: nothing to remove, found without a loop in Python
        return text
    return "".join(c for c in text if c.isprintable() or c == " ")


def _blank_to_none(value: Any) -> Any:
    value = clean_text(value)
    return None if isinstance(value, str) and not value.strip() else value


def shown(value: Any, limit: int = 40) -> str:
    """A value quoted in an error: at most ``limit`` characters of it, so a 50 MB field gives a
    short message."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    return f"{text[:limit]!r}… ({len(text):,} characters)"


class LeadRow(BaseModel):
    """One lead as a partner, a form or a fair sends it (CSV column = field)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, str_max_length=MAX_TEXT)

    source_channel: SourceChannel
    external_id: str | None = None
    partner: str | None = None
    campaign: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    #: The offline event (fair, seminar, roadshow) where the lead was met.
    event: str | None = Field(None, max_length=200)
    #: The code of the person who referred this lead (as they typed it).
    referral_code: str | None = Field(None, max_length=40)
    #: A hash of the device the lead applied from (fraud checks compare it; never shown).
    device_id: str | None = Field(None, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = None
    email: str | None = None
    language: Literal["zh-CN", "en"] = "zh-CN"
    birth_year: int | None = Field(None, ge=1900, le=2015)
    employment_type: EmploymentType | None = None
    employer_kind: EmployerKind | None = None
    employer: str | None = None
    monthly_income: Decimal | None = Field(None, ge=0)
    monthly_debt: Decimal | None = Field(None, ge=0)
    currency: str | None = None
    region: str | None = None
    city: str | None = None
    address: str | None = None
    industry: str | None = None
    business_name: str | None = None
    business_years: Decimal | None = Field(None, ge=0)
    business_revenue: Decimal | None = Field(None, ge=0)
    loan_type: LoanType | None = None
    loan_amount: Decimal | None = Field(None, gt=0)
    loan_term_months: int | None = Field(None, gt=0, le=480)
    loan_purpose: str | None = None
    collateral_value: Decimal | None = Field(None, gt=0)
    consent_email: bool = False
    consent_sms: bool = False
    captured_at: datetime | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _blanks(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @field_validator("consent_email", "consent_sms", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        if value is None:
            return False
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"expected yes/no, got {shown(value)}")

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value: Any) -> Any:
        if _blank_to_none(value) is None:  # an empty cell is a missing one (this runs before `_blanks`)
            return "zh-CN"
        return {"zh": "zh-CN", "zh-cn": "zh-CN", "cn": "zh-CN", "en": "en", "en-us": "en", "en-gb": "en"}.get(
            str(value).strip().lower(), value
        )

    def to_command(self, phone_region: str, tz: ZoneInfo, origin: str) -> CaptureLead:
        """Normalise contact details and build the capture command."""
        issues: list[str] = []
        phone, zone = _phone(self.phone, phone_region, issues)
        email = normalise_email(self.email, issues)
        if not phone and not email:
            raise RowError(
                [
                    (
                        "phone/email",
                        "no valid phone number or e-mail address: "
                        + ("; ".join(issues) if issues else "both are empty"),
                    )
                ]
            )
        captured = self.captured_at
        if captured is not None and captured.tzinfo is None:
            captured = captured.replace(tzinfo=tz)

        def num(v: Decimal | None) -> str | None:
            return None if v is None else str(v)

        source = {
            "channel": self.source_channel.value,
            "external_id": self.external_id,
            "partner": self.partner,
            "campaign": self.campaign or self.utm_campaign,
            "referral_code": self.referral_code,
            "event": self.event,
            "utm": {
                k: v
                for k, v in (("source", self.utm_source), ("medium", self.utm_medium), ("campaign", self.utm_campaign))
                if v
            },
        }
        profile = {
            "birth_year": self.birth_year,
            "employment_type": self.employment_type.value if self.employment_type else None,
            "employer_kind": self.employer_kind.value if self.employer_kind else None,
            "employer": self.employer,
            "monthly_income": num(self.monthly_income),
            "monthly_debt": num(self.monthly_debt),
            "currency": self.currency or "CNY",
            "region": self.region,
            "city": self.city,
            "address": self.address,
            "industry": self.industry,
            "business_name": self.business_name,
            "business_years": num(self.business_years),
            "business_revenue": num(self.business_revenue),
        }
        interest = {
            "loan_type": self.loan_type.value if self.loan_type else None,
            "amount": num(self.loan_amount),
            "term_months": self.loan_term_months,
            "purpose": self.loan_purpose,
            "collateral_value": num(self.collateral_value),
        }
        consents = {}
        if self.consent_email and email:
            consents["email"] = True
        if self.consent_sms and phone:
            consents["sms"] = True
        return CaptureLead(
            source={k: v for k, v in source.items() if v is not None},
            contact={
                "name": self.name,
                "phone": phone,
                "email": email,
                "language": self.language,
                "timezone": zone,
                **({"device": self.device_id} if self.device_id else {}),
            },
            profile={k: v for k, v in profile.items() if v is not None},
            interest={k: v for k, v in interest.items() if v is not None},
            consents=consents,
            contact_issues=tuple(issues),
            captured_at=captured,
            origin=origin,
        )


def normalise_phone(raw: str | None, region: str, issues: list[str]) -> str | None:
    """E.164 form of a valid number, else None with the reason added to ``issues``."""
    return _phone(raw, region, issues)[0]


def _phone(raw: str | None, region: str, issues: list[str]) -> tuple[str | None, str | None]:
    """A valid number's E.164 form and its time zone (see ``_zone``), from one parse (a
    parse is a tenth of a millisecond); else None, None with the reason added to ``issues``."""
    if not raw:
        return None, None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as e:
        issues.append(f"phone {shown(raw)} is not a phone number ({e})")
        return None, None
    if not phonenumbers.is_valid_number(number):
        issues.append(f"phone {shown(raw)} is not a valid number")
        return None, None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), _zone(number)


def _zone(number: phonenumbers.PhoneNumber) -> str | None:
    """The IANA time zone of a phone number when it has exactly one (else unknown)."""
    zones = phone_timezone.time_zones_for_number(number)
    return zones[0] if len(zones) == 1 and zones[0] != "Etc/Unknown" else None


def normalise_email(raw: str | None, issues: list[str]) -> str | None:
    """Normalised address if the syntax is valid (no DNS look-up at import)."""
    if not raw:
        return None
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as e:
        issues.append(f"e-mail {shown(raw)} is invalid ({e})")
        return None


class LifecycleRow(BaseModel):
    """One lifecycle fact from the lender's systems, naming its lead one of several ways."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, str_max_length=MAX_TEXT)

    type: LifecycleKind
    at: datetime | None = None
    lead_id: UUID | None = None
    source_channel: SourceChannel | None = None
    external_id: str | None = None
    phone: str | None = None
    email: str | None = None
    application_id: str | None = None
    loan_type: LoanType | None = None
    amount: Decimal | None = Field(None, gt=0)
    reason: str | None = None
    days_past_due: int | None = Field(None, ge=1)
    term_months: int | None = Field(None, ge=1, le=480)
    stage: Stage | None = None
    channel: Literal["email", "sms", "phone"] | None = None
    #: tagged: a lead tag, e.g. employee, commissioned_partner, settlement_service_provider.
    tag: str | None = Field(None, max_length=60, pattern=r"^[a-z][a-z0-9_]*$")
    #: application_submitted: the ``hk`` reference of the tracked link the applicant came through
    #: (the lender's site passes it on), attributing the application to that message.
    click_ref: str | None = Field(None, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")

    @field_validator("*", mode="before")
    @classmethod
    def _blanks(cls, value: Any) -> Any:
        return _blank_to_none(value)

    def to_command(self, phone_region: str, tz: ZoneInfo, origin: str) -> RecordLifecycle:
        problems: list[tuple[str, str]] = []
        needs = {
            "application_submitted": ["application_id"],
            "application_approved": ["application_id"],
            "application_declined": ["application_id"],
            "loan_funded": ["application_id", "amount"],
            "repayment_missed": ["application_id", "days_past_due"],
            "stage_changed": ["stage"],
            "consent_granted": ["channel"],
            "consent_withdrawn": ["channel"],
            "tagged": ["tag"],
        }[self.type]
        for f in needs:
            if getattr(self, f) is None:
                problems.append((f, f"required for {self.type}"))
        if not (self.lead_id or (self.source_channel and self.external_id) or self.phone or self.email):
            problems.append(("lead", "name the lead: lead_id, source_channel+external_id, phone or email"))
        issues: list[str] = []
        phone = normalise_phone(self.phone, phone_region, issues)
        email = normalise_email(self.email, issues)
        problems += [("phone/email", i) for i in issues]
        if problems:
            raise RowError(problems)
        at = self.at.replace(tzinfo=tz) if self.at and self.at.tzinfo is None else self.at
        return RecordLifecycle(
            lead=LeadRef(
                self.lead_id, self.source_channel.value if self.source_channel else None, self.external_id, phone, email
            ),
            kind=self.type,
            at=at,
            application_id=self.application_id or "",
            loan_type=self.loan_type.value if self.loan_type else "",
            amount=str(self.amount) if self.amount is not None else "",
            reason=self.reason or "",
            days_past_due=self.days_past_due or 0,
            term_months=self.term_months or 0,
            stage=self.stage.value if self.stage else "",
            channel=self.channel or "",
            tag=self.tag or "",
            click_ref=self.click_ref or "",
            origin=origin,
        )


def validation_problems(e: ValidationError) -> list[tuple[str, str]]:
    """Field-by-field messages from a pydantic error, in words a marketer reads."""
    out = []
    for err in e.errors():
        field = ".".join(str(p) for p in err["loc"]) or "row"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown column"
        elif err["type"] == "missing":
            msg = "required"
        elif "input" in err and err["type"] not in ("missing",):
            msg = f"{msg} (got {shown(err['input'])})"
        out.append((field, msg))
    return out


def lead_ref(ref: str, phone_region: str) -> LeadRef:
    """A lead reference from a UUID, a phone number, an e-mail or source_channel:external_id."""
    ref = ref.strip()
    try:
        return LeadRef(lead_id=UUID(ref))
    except ValueError:
        pass
    if "@" in ref:
        return LeadRef(email=ref.lower())
    if ref.startswith("+") or ref.isdigit():
        return LeadRef(phone=normalise_phone(ref, phone_region, []) or ref)
    if ":" in ref:
        channel, _, external = ref.partition(":")
        return LeadRef(source_channel=channel, external_id=external)
    raise ValueError(f"{ref[:80]!r} is not a lead id, phone, e-mail or source_channel:external_id")


def lead_parser(phone_region: str, tz: ZoneInfo) -> Parse:
    """Lead rows into capture commands (a refusal as ``RowError``, field by field)."""
    return _parser(LeadRow, phone_region, tz)


def lifecycle_parser(phone_region: str, tz: ZoneInfo) -> Parse:
    """Lifecycle rows into commands (a refusal as ``RowError``, field by field)."""
    return _parser(LifecycleRow, phone_region, tz)


def _parser(row: type[LeadRow] | type[LifecycleRow], phone_region: str, tz: ZoneInfo) -> Parse:
    def parse(raw: dict[str, Any], origin: str) -> CaptureLead | RecordLifecycle:
        try:
            return row.model_validate(raw).to_command(phone_region, tz, origin)
        except ValidationError as e:
            raise RowError(validation_problems(e)) from None

    return parse
