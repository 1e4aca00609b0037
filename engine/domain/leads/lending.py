"""How a lead's applications and loans may move: one application per id, approvals and
declines only of its own applications, a funded loan only with its amount, missed repayments only
on funded loans; and the funnel, which moves only forward (or to lost). The Lead records what
these decide (its events)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from engine.domain.leads.state import LeadState
from engine.domain.shared.errors import InvalidLeadError
from engine.domain.shared.money import Money
from engine.domain.shared.values import OPEN_APPLICATION, ApplicationStatus, Stage, stage_rank


class LendingDecisions(LeadState):
    """The Lead's lending rules (a mixin: the state and the events are the Lead's)."""

    if TYPE_CHECKING:

        def _stage_changed(self, from_stage: str, to_stage: str, reason: str, at: datetime) -> None: ...
        def _application_submitted(
            self, application_id: str, loan_type: str, amount: Money | None, at: datetime
        ) -> None: ...
        def _application_approved(self, application_id: str, amount: Money | None, at: datetime) -> None: ...
        def _application_declined(self, application_id: str, reason: str, at: datetime) -> None: ...
        def _loan_funded(
            self, application_id: str, amount: Money | None, at: datetime, loan_type: str, term_months: int
        ) -> None: ...
        def _repayment_missed(self, application_id: str, days_past_due: int, at: datetime) -> None: ...

    def submit_application(self, application_id: str, loan_type: str, amount: Money | None, at: datetime) -> bool:
        """Record an application (once per application id) and move the lead to APPLIED."""
        if application_id in self.applications:
            return False
        self._application_submitted(application_id=application_id, loan_type=loan_type, amount=amount, at=at)
        self.advance_to(Stage.APPLIED, f"application {application_id} submitted", at)
        return True

    def approve_application(self, application_id: str, amount: Money | None, at: datetime) -> bool:
        """Record an approval and move the lead to APPROVED."""
        self.check_application(application_id)
        if self.applications[application_id] in (ApplicationStatus.APPROVED, ApplicationStatus.FUNDED):
            return False
        self._application_approved(application_id=application_id, amount=amount, at=at)
        self.advance_to(Stage.APPROVED, f"application {application_id} approved", at)
        return True

    def decline_application(self, application_id: str, reason: str, at: datetime) -> bool:
        """Record a decline; the lead is LOST unless another application is still open."""
        self.check_application(application_id)
        if self.applications[application_id] == ApplicationStatus.DECLINED:
            return False
        self._application_declined(application_id=application_id, reason=reason, at=at)
        if not any(s in OPEN_APPLICATION for s in self.applications.values()):
            self.advance_to(Stage.LOST, f"application {application_id} declined: {reason}", at)
        return True

    def fund_loan(self, application_id: str, amount: Money | None, at: datetime, term_months: int = 0) -> bool:
        """Record funding (with the term, when known) and move the lead to FUNDED."""
        self.check_application(application_id)
        if self.applications[application_id] == ApplicationStatus.FUNDED:
            return False
        if term_months < 0:
            raise InvalidLeadError("term_months", f"must be 0 (unknown) or more, got {term_months}")
        if amount is None or amount.amount <= 0:  # the reports and the referral rewards add it up
            shown = "nothing" if amount is None else str(amount)
            raise InvalidLeadError("amount", f"a funded loan needs its amount (a number above 0), got {shown}")
        self._loan_funded(
            application_id=application_id,
            amount=amount,
            at=at,
            loan_type=self.application_types.get(application_id, ""),
            term_months=term_months,
        )
        self.advance_to(Stage.FUNDED, f"loan {application_id} funded", at)
        return True

    def miss_repayment(self, application_id: str, days_past_due: int, at: datetime) -> bool:
        """Record a missed repayment on a funded loan."""
        self.check_application(application_id)
        if self.applications[application_id] != ApplicationStatus.FUNDED:
            raise InvalidLeadError("application_id", f"{application_id} has not been funded")
        self._repayment_missed(application_id=application_id, days_past_due=days_past_due, at=at)
        return True

    def check_application(self, application_id: str) -> None:
        """Raise unless this lead has submitted ``application_id``."""
        if application_id not in self.applications:
            raise InvalidLeadError("application_id", f"no application {application_id!r} was submitted by this lead")

    def advance_to(self, stage: Stage, reason: str, at: datetime) -> bool:
        """Move forward in the funnel (or to LOST); moving backwards is ignored."""
        if stage == self.stage:
            return False
        backwards = stage_rank(stage) < stage_rank(self.stage)
        if Stage.LOST not in (stage, self.stage) and backwards:
            return False
        self._stage_changed(from_stage=self.stage.value, to_stage=stage.value, reason=reason, at=at)
        return True
