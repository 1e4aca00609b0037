"""Ports: what the use cases need from the outside world, as Protocols."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from engine.application.partitions import ALL, Partitions
from engine.domain.screening.scoring import Scored
from engine.domain.shared.errors import HuokeError


class Clock(Protocol):
    """The current time; virtual in tests, the demo and backtests."""

    def now(self) -> datetime: ...


@dataclass(frozen=True)
class RenderedMessage:
    """A message rendered for one lead: which template file variant and locale were used."""

    subject: str | None
    text: str
    html: str | None
    locale: str
    variant: str
    #: Links the template marked ``| notrack``: never rewritten to tracked links.
    untracked: tuple[str, ...] = ()


#: Where a template's context holds the send's tracked-link session (``LinkSession.short``).
TRACK_CONTEXT = "_huoke_track"


class LinkSession(Protocol):
    """One message's tracked links while it renders."""

    def short(self, url: str) -> str:
        """The tracked link for ``url`` (the URL itself when it is not tracked)."""
        ...

    def finish(self, body: RenderedMessage) -> tuple[RenderedMessage, tuple[str, ...]]:
        """The rendered message with every tracked link in place, and where they lead."""
        ...


class LinkTracker(Protocol):
    """Rewrites a message's links to huoke's tracked short links (``/l/<code>``)."""

    def session(self, send_id: UUID, untracked: Sequence[str]) -> LinkSession:
        """A session for one message: URLs its template outputs go through ``short``."""
        ...

    def track(
        self, send_id: UUID, channel: str, body: RenderedMessage, untracked: Sequence[str]
    ) -> tuple[RenderedMessage, tuple[str, ...]]:
        """The rendered message with its tracked links, and where they lead (link 1 first)."""
        ...


class RenderError(HuokeError):
    """Raised when a template is missing or cannot render for this lead."""


class Renderer(Protocol):
    """Turns a template name and a lead's context into message parts."""

    def render(
        self, channel: str, template: str, audience: str, locale: str, context: dict[str, Any]
    ) -> RenderedMessage: ...

    def holding(self) -> AbstractContextManager[None]:
        """While open, each template is read as it was when first used in it (a dispatcher's
        pass renders every message of the pass from the same files; an edit counts from the
        next pass)."""
        ...


@dataclass(frozen=True)
class OutgoingMessage:
    """One message ready for a channel; ``send_id`` is its idempotency key everywhere."""

    send_id: UUID
    channel: str
    to: str
    body: RenderedMessage
    unsubscribe_url: str
    headers: dict[str, str] = field(default_factory=dict)
    #: Where its tracked links lead (link 1 first), recorded with the dispatch marker.
    links: tuple[str, ...] = ()
    #: When it leaves by the engine's clock (a simulation's time; the Date header, the SMS log).
    at: datetime | None = None


@dataclass(frozen=True)
class SendResult:
    """What a channel said about one message."""

    send_id: UUID
    ok: bool
    provider_ref: str = ""
    reason: str = ""
    permanent: bool = False
    bounced: bool = False  # the address itself was refused: stop using it
    unreachable: bool = False  # the server or provider could not be reached: it never left


class Progress(Protocol):
    """What a channel tells the dispatcher about the messages as they go, so that after a crash
    at most the messages on the wire at that moment are in doubt. Messages that leave together
    (one per connection, or a group a channel can reconcile exactly) are marked in one commit
    and their outcomes recorded in one."""

    def sending(self, messages: list[OutgoingMessage], settled: Sequence[SendResult] = ()) -> list[bool]:
        """Just before ``messages`` leave: their dispatch markers are committed, in the same
        commit as the outcomes ``settled`` of messages that left before. For each message,
        False: drop it (its lead changed since the decision; the dispatcher has recorded why)."""
        ...

    def sent(self, results: Sequence[SendResult]) -> None:
        """The outcomes of messages (sent or not), recorded at once."""
        ...


class Channel(Protocol):
    """Sends messages of one kind (e-mail, SMS, webhook); reports each through ``progress``."""

    name: str

    def send_batch(self, messages: list[OutgoingMessage], progress: Progress) -> None: ...

    def already_sent(self, send_id: UUID) -> str | None:
        """The provider reference if this send id is known to have left, else None."""
        ...


class Scorer(Protocol):
    """A loaded scoring model: rows of model inputs in, one result per row out (in batches)."""

    @property
    def features(self) -> list[str]: ...

    def score_many(self, rows: Sequence[dict[str, Any]]) -> list[Scored]: ...


class ModelStore(Protocol):
    """Where model files live; refuses a file whose SHA-256 is not the registered one."""

    def load(self, kind: str, file_name: str, sha256: str) -> Scorer: ...


class TrainedModel(Protocol):
    """A model fitted on a dataset, with its metrics on the later window and its drift reference."""

    @property
    def features(self) -> list[str]: ...

    @property
    def kinds(self) -> dict[str, str]: ...

    @property
    def metrics(self) -> dict[str, Any]: ...

    @property
    def training(self) -> dict[str, Any]: ...

    @property
    def reference(self) -> dict[str, Any]: ...


class SavedModel(Protocol):
    """A model file written, and its SHA-256 (recorded by the registry)."""

    @property
    def path(self) -> Path: ...

    @property
    def sha256(self) -> str: ...


@runtime_checkable
class ModelLab(ModelStore, Protocol):
    """Training, evaluating and keeping models (scikit-learn and model files in the adapters)."""

    def fit(self, kind: str, data: Any) -> TrainedModel: ...

    def save(self, trained: Any, version: int) -> SavedModel: ...

    def evaluate(self, y: Any, scored: Sequence[Scored]) -> dict[str, Any]: ...

    def evaluate_uplift(self, y: Any, treatment: Any, scored: Sequence[Scored]) -> dict[str, Any]: ...


# The views: projections of the event logs the use cases read (implemented in ``projections``).
# ``feeds`` names, for each log the view follows, the engine attribute of that log and the
# topics read from it; one process at a time writes a view (see ``Engine.views_owned``).

#: (engine attribute of a log, topics the view reads from it)
Feed = tuple[str, Sequence[str]]


class View(Protocol):
    """What every view offers the engine: what it follows, catching up, and a rebuild."""

    feeds: Sequence[Feed]
    resets: int

    def max_tracking_id(self, application_name: str) -> int | None: ...

    def apply_batch(self, events: Sequence[Any], tracking: Any) -> None: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


class Helper(Protocol):
    """A second process of an embedded engine: it owns the lead partitions this one does not and
    works them step by step with this one (each step begun here, then finished together), so the
    engine's Python runs on two cores against the one store."""

    parts: Partitions
    #: The waiting work (lead events and due timers) from which a run lends it ``parts``.
    lends_from: int

    def begin(self, step: str, *args: Any) -> None: ...

    def idle(self) -> bool: ...

    def ready(self, timeout: float = 0.0) -> bool: ...

    def finish(self) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DueTimer:
    """A wait that falls due: the schedule row the timer view keeps."""

    enrolment_id: UUID
    step: str
    due_at: datetime


class FunnelView(View, Protocol):
    """Leads per stage, audience and source; messages per journey step and outcome."""

    def leads(self, filters: dict[str, str], after: str = "", limit: int = 100) -> list[dict[str, Any]]: ...

    def stages(self) -> list[dict[str, Any]]: ...

    def reached(self) -> list[dict[str, Any]]: ...

    def messages(self) -> list[dict[str, Any]]: ...

    def clicks_then_applied(self) -> list[dict[str, Any]]: ...

    def last_clicks(self) -> list[dict[str, Any]]: ...

    def cube(
        self, touch: str = "first", since: str | None = None, until: str | None = None, channel: str | None = None
    ) -> list[dict[str, Any]]: ...

    def daily(
        self, since: str | None = None, until: str | None = None, channel: str | None = None
    ) -> list[dict[str, Any]]: ...

    def daily_messages(
        self, since: str | None = None, until: str | None = None, journey: str | None = None
    ) -> list[dict[str, Any]]: ...

    def score_bands(
        self, since: str | None = None, until: str | None = None, channel: str | None = None
    ) -> list[dict[str, Any]]: ...

    def split_assignments(self, journey_id: str) -> list[dict[str, Any]]: ...

    def captured_between(self, since: str, until: str | None = None, limit: int = 5000) -> list[str]: ...

    def arms(
        self,
        journey_id: str,
        windows: dict[str, float | None],
        since: str | None = None,
        until: str | None = None,
        band_of: str | None = None,
    ) -> list[dict[str, Any]]: ...


class CallbackVerifier(Protocol):
    """Tells a provider's genuine callback (delivery receipt, inbound reply) from a forgery;
    ``statuses`` are the delivery statuses the provider may report."""

    name: str
    statuses: frozenset[str]

    def verify(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> bool: ...


class PiiVault(Protocol):
    """Per-lead data keys for the personal fields of lead events (envelope encryption); erasing a
    lead deletes its key (crypto-shredding)."""

    def prepare(self, lead_ids: Iterable[UUID]) -> None: ...

    def seal(self, lead_id: UUID, plaintext: bytes, aad: bytes) -> bytes | None: ...

    def open(self, lead_id: UUID, blob: bytes, aad: bytes) -> bytes | None: ...

    def erase(self, lead_id: UUID, at: str) -> None: ...

    def forget(self, lead_id: UUID) -> None: ...

    def index_key(self) -> bytes: ...


class JourneyIndexView(View, Protocol):
    """Enrolments, due timers, agent tasks and outcome counts per journey."""

    def due(
        self, until: datetime, limit: int = 500, exclude: Sequence[str] = (), parts: Partitions = ALL
    ) -> list[DueTimer]: ...

    def next_due(self, parts: Partitions = ALL) -> datetime | None: ...

    def pending_count(self) -> int: ...

    def enrolments_of(self, lead_id: UUID) -> list[dict[str, Any]]: ...

    def active_in(self, journey_id: str) -> list[dict[str, Any]]: ...

    def step_counts(self, journey_id: str, version: int | None = None) -> dict[str, int]: ...

    def outcomes(self, journey_id: str | None = None) -> list[dict[str, Any]]: ...

    def tasks(self, queue: str | None = None, include_done: bool = False) -> list[dict[str, Any]]: ...

    def unrouted_tasks(
        self, queues: Sequence[str], parts: Partitions = ALL, limit: int = 500, held: bool = False
    ) -> list[dict[str, Any]]: ...

    def agent_loads(self) -> dict[str, int]: ...

    def task_facts(self) -> list[dict[str, Any]]: ...

    def overdue_tasks(
        self, slas: dict[str, Any], now: datetime, parts: Partitions = ALL, limit: int = 500
    ) -> list[dict[str, Any]]: ...

    def next_task_deadline(self, slas: dict[str, Any], parts: Partitions = ALL) -> datetime | None: ...

    def desk_changes(self) -> int: ...

    def last_task_deadline(self, slas: dict[str, Any], until: datetime, parts: Partitions = ALL) -> datetime | None: ...


class DeliveryScheduleView(View, Protocol):
    """Deliveries held for a contact window, a cap or a retry, and when each falls due."""

    def due(self, until: datetime, limit: int = 1000, parts: Partitions = ALL) -> list[UUID]: ...

    def next_due(self, parts: Partitions = ALL) -> datetime | None: ...

    def held_count(self) -> int: ...

    def held(self) -> list[dict[str, Any]]: ...

    def review_holds(self) -> list[dict[str, Any]]: ...

    def open_before(
        self, sends: Sequence[tuple[UUID, UUID, datetime, int]]
    ) -> dict[UUID, list[tuple[UUID, datetime | None]]]: ...


class ScreeningView(View, Protocol):
    """Segment members, score bands and the leads whose facts move with the calendar."""

    def segment_sizes(self) -> dict[str, int]: ...

    def members(self, segment: str, lead_ids: list[str]) -> set[str]: ...

    def bands(self) -> list[dict[str, Any]]: ...

    def calendar_leads(self, after: UUID | None = None, limit: int = 1000) -> list[UUID]: ...


class JourneyFolder(Protocol):
    """The journeys folder as the team edits it, and the throwaway engines that try a journey
    (bootstrap builds both from the settings): ``load`` validates the folder (or ``only`` these
    files; ``JourneyValidationError`` lists every problem), ``journeys`` gives its journeys or
    none and why, ``sandbox`` is an engine on a virtual clock at ``start`` with ``journey``
    published beside ``others`` and channels that record instead of sending, ``fingerprint``
    the templates' (recorded with each published version)."""

    def load(self, only: list[Path] | None = None) -> Any: ...
    def journeys(self) -> tuple[list[tuple[Any, dict[str, Any]]], str]: ...
    def sandbox(
        self, journey: Any, raw: dict[str, Any], start: datetime, others: list[Any], models_from: Any
    ) -> AbstractContextManager[tuple[Any, dict[str, Any]]]: ...
    def fingerprint(self) -> str: ...
