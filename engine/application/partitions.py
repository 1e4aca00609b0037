"""Lead partitions: how several workers share the work without racing.

Every lead falls in one of ``BUCKETS`` buckets (from its id) and every bucket in one of
``count`` partitions. A worker processes only the partitions it owns (leases in
``engine.adapters.leases``): the lead events, journey updates, message requests, sends and
follow-up timers of a lead are always handled by the one worker that owns the lead's partition,
so no two workers ever write the same lead's enrolments, deliveries or contact history.

Each partition keeps its own position in each log it follows (tracking name ``Leads#3`` for
partition 3); with one partition the name is the log's own (``Leads``), as in embedded mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

#: Asked between pages by the log followers: True ends the pass (a worker's tick is over).
Stop = Callable[[], bool]


def never() -> bool:
    return False


#: Buckets per lead id; the partition count must divide nothing in particular (bucket % count).
BUCKETS = 1024


def bucket_of(lead_id: UUID) -> int:
    """The lead's bucket (stored in views so partitions can be selected in SQL)."""
    return lead_id.int % BUCKETS


@dataclass(frozen=True)
class Partitions:
    """The partitions a process owns out of ``count``."""

    count: int = 1
    owned: frozenset[int] = frozenset({0})

    @classmethod
    def every(cls, count: int) -> Partitions:
        return cls(count, frozenset(range(count)))

    def of(self, lead_id: UUID) -> int:
        return bucket_of(lead_id) % self.count

    def owns(self, lead_id: UUID) -> bool:
        return self.of(lead_id) in self.owned

    @property
    def everything(self) -> bool:
        return len(self.owned) == self.count

    def tracking_name(self, upstream: str, partition: int) -> str:
        return upstream if self.count == 1 else f"{upstream}#{partition}"

    def describe(self) -> str:
        if self.everything:
            return f"all {self.count}"
        return ",".join(str(p) for p in sorted(self.owned)) or "none"


ALL = Partitions()
