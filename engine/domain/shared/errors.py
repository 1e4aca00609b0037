"""huoke's errors: one hierarchy under ``HuokeError`` (what a user is told, never a traceback).

The domain's and the use cases' errors are here; an adapter or an entrypoint that has errors of
its own (a CSV row, a model file, a database not initialised) subclasses ``HuokeError`` too.
"""

from __future__ import annotations

from collections.abc import Sequence


class HuokeError(Exception):
    """Raised for any error huoke reports to a user; the base of all others."""


class LeadNotFoundError(HuokeError):
    """Raised when a lead id matches no captured lead."""

    def __init__(self, lead_id: object) -> None:
        super().__init__(f"no lead with id {lead_id}")
        self.lead_id = lead_id


class InvalidLeadError(HuokeError):
    """Raised when lead data breaks a rule; ``field`` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class JourneyValidationError(HuokeError):
    """Raised when a journey, segment or template definition is refused; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class UnknownJourneyError(HuokeError):
    """Raised when a journey id or version has not been published."""


class JourneyStatusError(HuokeError):
    """Raised when a journey cannot change status (e.g. resuming one that is not paused)."""


class ProhibitedFeatureError(HuokeError):
    """A model was asked to use a prohibited basis (or a column named like one)."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        super().__init__(
            f"refused: {', '.join(self.columns)} "
            f"{'is a prohibited basis' if len(self.columns) == 1 else 'are prohibited bases'} "
            "(age, sex, marital status, race, religion, national origin) and may not feed a model; "
            "leave the column out (--exclude) or rename it only if it means something else"
        )


class MigrationPlanError(HuokeError):
    """Raised when a migration plan names steps that do not exist."""


class TrainingError(HuokeError):
    """The data cannot train a model (too few rows, one class only, no usable column)."""


class TaskStateError(HuokeError):
    """An agent task cannot do that now (already done, claimed by someone else, unknown outcome)."""


class TaskNotYoursError(TaskStateError):
    """Raised when an agent acts on a task another agent holds (only they or a team lead may)."""


class DeliveryStateError(HuokeError):
    """A message cannot do that now (not held for review, already settled)."""


class AccessError(HuokeError):
    """An API key cannot be created or used that way (unknown role, revoked, no such key)."""


class ReferralStateError(HuokeError):
    """A referral cannot do that now (not held, already paid, already decided)."""


class CostImportError(HuokeError):
    """A costs file cannot be read at all (missing, not CSV, no header)."""
