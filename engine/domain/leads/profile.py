"""What a lead's record may take in: a row's data (the lead's own source updates it; another
source only fills gaps, and a disagreement is kept as a conflict, once), segment membership, the
matched product and a model's score, each recorded only when it differs from what is on file; and
the typed records the Lead keeps (loans, scores, offer)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from engine.domain.leads.records import Loan, Offer, ScoreRecord
from engine.domain.leads.state import LeadState
from engine.domain.shared.values import Audience, JSONDict, Tier


class ProfileDecisions(LeadState):
    """The Lead's rules for its data, segments, offer and scores (a mixin: the state and the
    events are the Lead's)."""

    if TYPE_CHECKING:

        def _data_conflicted(self, source: JSONDict, conflicts: JSONDict, at: datetime) -> None: ...
        def _profile_updated(self, changes: JSONDict, source: JSONDict, at: datetime) -> None: ...
        def _segmented(
            self,
            audience: str,
            tier: str,
            segments: list[str],
            entered: list[str],
            reasons: JSONDict,
            rules_version: str,
            at: datetime,
        ) -> None: ...
        def _products_matched(
            self,
            product: str,
            name: str,
            apr: str,
            monthly_payment: str,
            dti_after: str,
            reasons: JSONDict,
            catalogue_version: str,
            at: datetime,
            inputs: JSONDict,
        ) -> None: ...
        def _scored(
            self,
            kind: str,
            model_version: int,
            probability: str,
            score: int | None,
            band: str,
            reasons: list[JSONDict],
            inputs: JSONDict,
            at: datetime,
        ) -> None: ...

    def owned_by(self, source: JSONDict) -> bool:
        """Whether ``source`` is the record this lead was captured from (its system of record)."""
        return bool(source.get("external_id")) and (source.get("channel"), source.get("external_id")) == (
            self.source.get("channel"),
            self.source.get("external_id"),
        )

    def update(self, incoming: JSONDict, source: JSONDict, at: datetime) -> bool:
        """Merge what a row says about the lead. The lead's own source updates it; another source
        (a partner's copy matched by phone or e-mail) only fills what the lead lacks, and a value
        that disagrees is recorded as a conflict to review, once — never applied, so importing
        the same files again changes nothing."""
        if self.erased:
            return False
        owner = self.owned_by(source)
        changes: JSONDict = {}
        disagreements: JSONDict = {}
        for section in ("contact", "profile", "interest"):
            current: JSONDict = getattr(self, section)
            delta = {k: v for k, v in incoming.get(section, {}).items() if v is not None and current.get(k) != v}
            if not owner:
                for k, v in delta.items():
                    if current.get(k) is not None and f"{section}.{k}={v}" not in self.conflicts:
                        disagreements[f"{section}.{k}"] = v
                delta = {k: v for k, v in delta.items() if current.get(k) is None}
            if delta:
                changes[section] = delta
        if disagreements:
            self._data_conflicted(source=source, conflicts=disagreements, at=at)
        issues = sorted(set(incoming.get("contact_issues", [])) - set(self.contact_issues))
        if issues:
            changes["contact_issues"] = issues
        if not changes:
            return False
        self._profile_updated(changes=changes, source=source, at=at)
        return True

    def segment(
        self,
        audience: Audience,
        tier: Tier,
        segments: list[str],
        reasons: JSONDict,
        rules_version: str,
        at: datetime,
    ) -> bool:
        """Record segment membership when it differs from what is recorded."""
        if (audience, tier, tuple(segments)) == (self.audience, self.tier, self.segments):
            return False
        self._segmented(
            audience=audience.value,
            tier=tier.value,
            segments=list(segments),
            entered=sorted(set(segments) - set(self.segments)),
            reasons=reasons,
            rules_version=rules_version,
            at=at,
        )
        return True

    def record_match(self, offer: JSONDict, inputs: JSONDict, catalogue_version: str, at: datetime) -> bool:
        """Record the product match (with the inputs it used) when it differs from the one on file."""
        if self.offer is not None and Offer.of(offer) == self.offer:
            return False
        self._products_matched(
            product=offer.get("product", ""),
            name=offer.get("name", ""),
            apr=offer.get("apr", ""),
            monthly_payment=offer.get("monthly_payment", ""),
            dti_after=offer.get("dti_after", ""),
            reasons=offer.get("reasons", {}),
            catalogue_version=catalogue_version,
            at=at,
            inputs=inputs,
        )
        return True

    def record_score(
        self,
        kind: str,
        model_version: int,
        probability: float,
        score: int | None,
        band: str,
        reasons: list[JSONDict],
        inputs: JSONDict,
        at: datetime,
    ) -> bool:
        """Record a score unless the same model already scored the same inputs."""
        current = self.score_of(kind)
        if current and current.scored(model_version, inputs):
            return False
        self._scored(
            kind=kind,
            model_version=model_version,
            probability=f"{probability:.6f}",
            score=score,
            band=band,
            reasons=reasons,
            inputs=inputs,
            at=at,
        )
        return True

    # ---- the recorded loans, scores and offer ----------------------------------------------

    def funded_loans(self) -> list[Loan]:
        """The loans this lender funded for the lead, in the order they were funded."""
        return list(self.loans.values())

    def score_of(self, kind: str) -> ScoreRecord | None:
        """The latest score of ``kind`` (credit or propensity), if the lead was scored."""
        return self.scores.get(kind)

    @property
    def matched_offer(self) -> Offer | None:
        """The product match on file (None before any match was recorded)."""
        return self.offer
