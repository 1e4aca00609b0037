"""Every error the domain raises, in one place."""

from __future__ import annotations


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
