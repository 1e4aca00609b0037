"""The engine: the use cases wired together, and the loop that runs everything due."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from time import monotonic
from typing import Any
from uuid import UUID

from engine.application.delivery.app import Deliveries
from engine.application.delivery.base import DispatchReport
from engine.application.journeys.app import Journeys
from engine.application.journeys.desk import TaskDesk
from engine.application.journeys.triggers import LEAD_TOPICS
from engine.application.leads.app import Leads, Outcome, by_person, capture_keys, lead_id_for
from engine.application.leads.commands import CaptureLead
from engine.application.partitions import ALL, Partitions
from engine.application.ports import (
    Clock,
    DeliveryScheduleView,
    DueTimer,
    FunnelView,
    Helper,
    JourneyIndexView,
    ScreeningView,
    View,
)
from engine.application.projecting import catch_up_together, event_time, first_unread, next_page
from engine.domain.journeys.desk import NO_DESK, Desk
from engine.eventstore.saving import forget_cache

BATCH_SPAN = timedelta(hours=1)
#: Tasks whose service levels run out within this of the first are escalated together, at the
#: last one's deadline (each a little late rather than a pass of the whole loop per task).
ESCALATION_SPAN = timedelta(minutes=15)
#: The engine's views (each has one writer at a time).
VIEW_NAMES = ("index", "funnel", "schedule", "screening", "ledger")

#: Lead events the journeys take up in one settle pass before the rest of the pass (dispatch,
#: the leads' updates, the views) runs on what they decided, in pages of ``LEAD_PAGE``: a backlog
#: of 100k captured leads flows through in rounds of 2,000, each while its leads, enrolments and
#: messages are still in the aggregate cache, instead of every stage reading all 100k in turn (an
#: LRU cache smaller than the backlog would then miss on every one).
ROUND = 2_000
#: How long the engine waits for its helper's answer (it comes back the moment the answer is in)
#: before it looks at the views again.
HELPER_POLL = 0.02
LEAD_PAGE = 500
#: A batch of captures this big is shared with the helper (a smaller one: the round trip costs
#: more than the second core saves).
CAPTURE_SPLIT_FROM = 100
#: The part of a batch the helper captures: its partitions' people first, so that each process
#: has its own partitions' new leads cached for the run that follows.
CAPTURE_SHARE = 0.5


@dataclass
class RunReport:
    """What one ``run`` did, for the CLI and tests."""

    lead_events: int = 0
    timers_fired: int = 0
    days_reviewed: int = 0
    requested: int = 0
    #: Agent-task events the desk wrote (routed, held, escalated).
    task_updates: int = 0
    dispatch: DispatchReport = field(default_factory=DispatchReport)
    #: The run stopped at its time budget with work left (a worker goes on without pausing).
    unfinished: bool = False

    def add(self, other: RunReport) -> None:
        """Count in what another process's part of the run did (see ``Engine.helper``); whether
        the run stopped at its budget stays this process's to say."""
        for f in fields(self):
            mine = getattr(self, f.name)
            if isinstance(mine, DispatchReport):
                mine.add(getattr(other, f.name))
            elif not isinstance(mine, bool):
                setattr(self, f.name, mine + getattr(other, f.name))

    def as_dict(self) -> dict[str, Any]:
        return {
            "lead_events": self.lead_events,
            "timers_fired": self.timers_fired,
            "days_reviewed": self.days_reviewed,
            "messages_requested": self.requested,
            "task_updates": self.task_updates,
            "sent": self.dispatch.sent,
            "failed": self.dispatch.failed,
            "skipped": self.dispatch.skipped,
            "reconciled": self.dispatch.reconciled,
            "deferred": self.dispatch.deferred,
            "held_for_review": self.dispatch.held,
        }


@dataclass
class Engine:
    """Everything huoke runs, built by bootstrap from settings."""

    clock: Clock
    leads: Leads
    journeys: Journeys
    deliveries: Deliveries
    funnel: FunnelView
    index: JourneyIndexView
    schedule: DeliveryScheduleView
    screening: ScreeningView
    #: Referral attribution and rewards (a reactor on the leads log).
    referrals: Any = None
    #: The referral ledger (a view of the referrals log).
    ledger: Any = None
    #: The loan officers' queues and who works them (routing, service levels).
    desk: Desk = NO_DESK
    #: The lead partitions this process works on (all of them unless workers share the work).
    parts: Partitions = ALL
    #: The views this process advances (each view has one writer); readers own none.
    views_owned: frozenset[str] = frozenset(VIEW_NAMES)
    #: Embedded on two cores: a second process this one lends most of its partitions to for a
    #: run with enough waiting work, working each step of the run with it (this process keeps
    #: the views, the desk, the calendar review and the loop's decisions: when the clock moves,
    #: and to what). See ``engine.bootstrap.helper``.
    helper: Helper | None = None
    #: Whether this process routes and escalates its agent tasks (a helper leaves its tasks to
    #: the engine process, which keeps the index the desk decides on).
    works_desk: bool = True
    #: The scheduled model monitoring the daily review runs (``screening.models.monitor``).
    monitor_models: Callable[[Engine], Any] | None = None
    #: Lead events a settle pass's round takes up, in pages of ``lead_page`` (see ``ROUND``).
    round: int = ROUND
    lead_page: int = LEAD_PAGE
    _deadline: float | None = None
    #: The moment a run with ``until`` ends at: lead events after it wait for a later run.
    _horizon: datetime | None = None
    _task_desk: TaskDesk | None = None
    _last_reviewed: date | None = None
    #: Each log's head (by name) when this process's last settle found nothing to do.
    _quiet_heads: dict[str, int] = field(default_factory=dict, repr=False)
    #: The helper's quiet heads and the horizon it settled to (None: it moved at its last step,
    #: or has not settled yet): while they stand, and nothing of its comes due, it has no work.
    _helper_quiet: tuple[dict[str, int], datetime | None] | None = field(default=None, repr=False)
    #: Whether this process's last settle recorded lead events for leads of any partition (referral
    #: news): what the helper may have to react to. The rest of what it records is none of the
    #: helper's: its own partitions' journeys, messages and their effects, and the desk's task
    #: updates (tasks of any partition, but no follower of the helper reads a task's events).
    _moved_across: bool = field(default=False, repr=False)
    #: Runs lent to the helper (it takes each one's budget, horizon and live journeys afresh).
    _runs: int = 0
    #: The partitions this process owns while the helper has its share (None: not lent).
    _lent: Partitions | None = field(default=None, repr=False)
    #: What this process holds of the helper's share may be stale: the helper worked it since.
    _share_stale: bool = field(default=False, repr=False)
    #: Runs this process worked every partition in (the helper's cache of its share is stale
    #: once there has been one since its last run).
    _runs_alone: int = field(default=0, repr=False)
    _review_known: bool = False
    #: (view, log) → the log's head (and the view's resets) when this process last brought the
    #: view to its end: a view whose logs did not move since is not asked where it stands.
    _caught_up: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict, repr=False)
    #: (follower, log) → the log's head, the partitions owned (and the follower's horizon) when
    #: the follower last read the log to its end in this process.
    _followed: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict, repr=False)

    def run(self, until: datetime | None = None, timer_batch: int = 500, budget: float | None = None) -> RunReport:
        """Process everything pending, then fire timers due up to ``until`` (default: now).

        With a virtual clock the clock moves to each batch of timers' due time, so a
        30-day journey runs in seconds and every event carries the time it would have had.
        """
        report = RunReport()
        self._deadline = None if budget is None else monotonic() + budget
        self._horizon = until
        self.journeys.refresh_live()
        self._lend_if_worth_it(until)
        try:
            return self._run(report, until, timer_batch)
        finally:
            self._take_back()

    def _run(self, report: RunReport, until: datetime | None, timer_batch: int) -> RunReport:
        self._settle_all(report)
        everything = self._run_parts
        desk_moves = True  # False once a due deadline moved nothing: the rest of the run skips them
        while not self._out_of_time():
            horizon = until or self.clock.now()
            paused = self.journeys.paused_journeys()
            # The next timer only: most passes of this loop move to something else first.
            timers = self.index.due(horizon, limit=1, exclude=paused, parts=everything)
            held = self.schedule.next_due(everything)
            overdue = self.index.next_task_deadline(self.desk.escalating_slas, everything) if desk_moves else None
            review = self._next_review()
            if review[1] <= horizon and self.reviews_calendar:
                first_other = min(
                    [t for t in (held, timers[0].due_at if timers else None, overdue) if t is not None], default=None
                )
                if first_other is None or review[1] <= first_other:
                    # Local midnight comes first: calendar-driven segments change before the day's work.
                    self._move_clock_to(review[1])
                    self._review_day(review[0], report)
                    self._settle_all(report)
                    continue
            if overdue is not None and overdue <= horizon:
                first_other = min([t for t in (held, timers[0].due_at if timers else None) if t], default=None)
                if first_other is None or overdue <= first_other:
                    # A task runs out of its service level first: with those soon after it, up to
                    # whatever else comes first.
                    until_ = min(t for t in (overdue + ESCALATION_SPAN, first_other, horizon) if t is not None)
                    last = self.index.last_task_deadline(self.desk.escalating_slas, until_, everything)
                    self._move_clock_to(max(overdue, last or overdue))
                    desk_moves = self._settle_all(report)[1]
                    continue
            if held is not None and held <= horizon and (not timers or held < timers[0].due_at):
                self._move_clock_to(held)  # held deliveries come due before the next timer
                if not self._settle_all(report)[1] and not self._reads_own_schedule:
                    break  # the view lags behind another process's work: look again next tick
                continue
            if not timers:
                break
            # One batch spans at most an hour of due times, so every follow-up is decided and
            # sent within an hour of its time (quiet hours and staleness see the right clock),
            # and ends where a held delivery comes due.
            last = min(t for t in (horizon, timers[0].due_at + BATCH_SPAN, held) if t is not None)
            fired, moved = self._settle_all(report, fire=(last, timer_batch, paused))
            report.timers_fired += fired
            if not moved and not fired and not self._reads_own_schedule:
                break
        if until is not None:
            self._move_clock_to(until)
        report.unfinished = self._out_of_time()
        return report

    @property
    def _run_parts(self) -> Partitions:
        """The partitions the loop decides for: its own, with the helper's share while lent."""
        return self.parts if self._lent is None else Partitions.every(self.parts.count)

    def _lend_if_worth_it(self, until: datetime | None) -> None:
        """Lend the helper its share of the partitions for this run if at least its
        ``lends_from`` lead events and due timers wait: for less, a step's round trip between the processes
        costs more than the second core saves. Before a run it works alone after lending, this
        process drops its cached enrolments and messages (the helper changed its share's)."""
        helper = self.helper
        if helper is None or self._out_of_time():
            return
        horizon = until or self.clock.now()
        read = first_unread(self.journeys.recorder, self.leads.name, self.parts) or 0
        waiting = (self.leads.recorder.max_notification_id() or 0) - read
        if waiting < helper.lends_from:
            waiting += len(self.index.due(horizon, limit=helper.lends_from - waiting, parts=self.parts))
        if waiting < helper.lends_from:
            if self._share_stale:  # the helper changed its share's enrolments and messages
                self._forget_cached()
                self._share_stale = False
            self._runs_alone += 1
            return
        self._lent = self.parts
        self.parts = Partitions(self.parts.count, self.parts.owned - helper.parts.owned)
        self._runs += 1
        self._helper_quiet = None  # the helper looks at its partitions at least once

    def _take_back(self) -> None:
        """The run is over: this process owns every partition again (and reads the helper's
        share afresh before it next works it alone)."""
        if self._lent is None:
            return
        self.parts, self._lent, self._share_stale = self._lent, None, True

    def _forget_cached(self) -> None:
        """Drop the cached enrolments, tasks, messages and referrals (leads are brought up to
        date at every use)."""
        self.journeys.forget_cached_state()
        forget_cache(self.deliveries)
        if self.referrals is not None:
            forget_cache(self.referrals)

    def _fire(self, timers: Sequence[DueTimer]) -> int:
        """Fire ``timers`` (this process's), the clock at the last one's due time."""
        if not timers:
            return 0
        self._move_clock_to(timers[-1].due_at)
        return self.journeys.fire_timers(timers, self.leads)

    def _settle_all(
        self, report: RunReport, fire: tuple[datetime, int, Sequence[str]] | None = None
    ) -> tuple[int, bool]:
        """Fire the earliest timers due by ``fire``'s moment (up to its limit, excluding its paused
        journeys; each process its own, the clock at the last it fired), then ``_settle``, here
        and in the helper at once. Returns the timers fired and whether anything moved.

        The helper settles until its partitions are quiet, so it is given another round only
        when this process recorded something the helper's followers may have to react to
        (referral news: ``_moved_across``), not for its own partitions' work or the desk's (a
        round that found nothing cost each such step about 10 ms); this process settles again
        after any move (the views it keeps feed the desk)."""
        fired = 0
        helper_works = self._helper_begins(fire)
        if fire is not None:
            last, limit, paused = fire
            fired = self._fire(self.index.due(last, limit=limit, exclude=paused, parts=self.parts))
        any_moved = False
        while True:
            moved = self._settle(report)
            helper_moved = False
            if helper_works and self.helper is not None:
                self._while_helper_works()
                helper_fired, helper_moved, helper_report, helper_now, quiet = self.helper.finish()
                fired += helper_fired
                report.add(helper_report)
                self._move_clock_to(helper_now)
                self._helper_quiet = None if helper_moved else (quiet, self._horizon)
            if self._lent is None or (not moved and not helper_moved) or self._out_of_time():
                return fired, any_moved or moved or helper_moved
            any_moved = True
            helper_works = moved and self._moved_across and self._helper_begins(None)

    def _helper_begins(self, fire: tuple[datetime, int, Sequence[str]] | None) -> bool:
        """Begin the helper's step (fire, then settle; or settle) unless it has nothing to do:
        no log it follows moved since it last found its partitions quiet, the run's horizon is
        the same, and none of its timers or held messages is due. True if it was begun."""
        helper = self.helper
        if helper is None or self._lent is None:
            return False
        now, quiet, heads = self.clock.now(), self._helper_quiet, _Heads()
        if (
            quiet is not None
            and quiet[1] == self._horizon
            and all(heads.of(self._log(name)) == head for name, head in quiet[0].items())
            and not self.schedule.due(now, limit=1, parts=helper.parts)
            and not (fire and self.index.due(fire[0], limit=1, exclude=fire[2], parts=helper.parts))
        ):
            return False
        run: LentRun = (self._runs, self._runs_alone, self._deadline, self._horizon)
        if fire is not None:
            helper.begin("fire", run, now, *fire)
        else:
            helper.begin("settle", run, now)
        return True

    def capture_leads(self, commands: Sequence[CaptureLead]) -> list[Outcome]:
        """Capture a batch of leads (``Leads.capture_leads``). With a helper, a batch of at least
        ``CAPTURE_SPLIT_FROM`` is captured on both cores: the people of the helper's partitions
        there, the others here, at once. Each person's rows stay together and in order
        (``by_person``), so the outcome is the one process's; each process then has its
        partitions' new leads in its cache for the run that follows."""
        helper = self.helper
        if helper is None or len(commands) < CAPTURE_SPLIT_FROM or not helper.idle():
            return self.leads.capture_leads(commands)
        theirs: list[int] = []
        ours: list[int] = []
        for rows in by_person(commands):
            keys = capture_keys(commands[rows[0]])
            helpers = bool(keys) and helper.parts.owns(lead_id_for(keys[0]))  # by a new person's id
            if helpers and len(theirs) + len(rows) > CAPTURE_SHARE * len(commands):
                helpers = False  # its share is full: the rest here (the share's owner reads them later)
            elif not helpers and len(ours) + len(rows) > (1 - CAPTURE_SHARE) * len(commands):
                helpers = True
            (theirs if helpers else ours).extend(rows)
        if not theirs or not ours:
            return self.leads.capture_leads(commands)
        theirs.sort()  # each side in row order: a person's rows stay in theirs
        ours.sort()
        helper.begin("capture", self.clock.now(), [commands[i] for i in theirs])
        own = self.leads.capture_leads([commands[i] for i in ours])
        helped: list[Outcome] = helper.finish()
        by_row = dict(zip(theirs, helped, strict=True)) | dict(zip(ours, own, strict=True))
        return [by_row[i] for i in range(len(commands))]

    # ---- the helper's side of a lent run (``engine.bootstrap.helper`` runs these in the helper) --

    def capture_lent(self, now: datetime, commands: list[CaptureLead]) -> list[Outcome]:
        """Capture this process's part of a batch the engine process splits (``capture_leads``),
        at ``now``."""
        self._move_clock_to(now)
        return self.leads.capture_leads(commands)

    def settle_lent(self, run: LentRun, now: datetime, fired: int = 0) -> StepAnswer:
        """Settle this process's partitions at ``now`` in the engine process's run ``run``: the
        timers fired, whether anything moved, what was done, the clock after, and each log's
        head when it found nothing more to do."""
        self._join_lent(run)
        self._move_clock_to(now)
        report = RunReport()
        moved = self._settle(report)
        return fired, moved, report, self.clock.now(), dict(self._quiet_heads)

    def fire_lent(self, run: LentRun, now: datetime, last: datetime, limit: int, paused: list[str]) -> StepAnswer:
        """From ``now``, fire this process's earliest timers due by ``last``, then settle (as
        ``settle_lent``)."""
        self._join_lent(run)
        self._move_clock_to(now)
        fired = self._fire(self.index.due(last, limit=limit, exclude=paused, parts=self.parts))
        return self.settle_lent(run, self.clock.now(), fired)

    def _join_lent(self, run: LentRun) -> None:
        """At the first step of a run: its time budget, its horizon, the journeys live now; what
        the helper holds is dropped if the engine process worked its partitions alone since."""
        number, alone, deadline, until = run
        if number != self._runs:
            self._runs, self._deadline, self._horizon = number, deadline, until
            self.journeys.refresh_live()
            if alone != self._runs_alone:
                self._runs_alone = alone
                self._forget_cached()

    def _log(self, name: str) -> Any:
        """The log (an application) by its name."""
        logs = (self.leads, self.journeys, self.deliveries, self.referrals)
        return next(app for app in logs if app is not None and app.name == name)

    def _while_helper_works(self) -> None:
        """Keep the views up with what the helper records until it has done its step: the
        loop decides on them once it has, so what is left then is its last few events."""
        helper = self.helper
        while helper is not None and not helper.ready():
            if not self.refresh_views():
                helper.ready(HELPER_POLL)

    def _next_review(self) -> tuple[date, datetime]:
        """The next day to review and when (local midnight; now for a first, overdue review)."""
        tz = self.journeys.default_tz
        now = self.clock.now()
        last = self._last_reviewed if self._review_known else self.leads.last_reviewed_day()
        self._last_reviewed, self._review_known = last, True
        today = now.astimezone(tz).date()
        # A first review, or one after days without any, happens for today, now.
        day = today if last is None or last + timedelta(days=1) < today else last + timedelta(days=1)
        return day, max(datetime.combine(day, time(0), tzinfo=tz), now)

    def _review_day(self, day: date, report: RunReport) -> None:
        """Re-segment the leads whose facts move with the calendar (see CalendarReview)."""
        self.refresh_views()
        ids: list[Any] = []
        after = None
        while batch := self.screening.calendar_leads(after, 5000):
            ids += batch
            after = batch[-1]
        self.leads.review_calendar(day, ids, self.clock.now())
        self._last_reviewed = day
        report.days_reviewed += 1
        if self.monitor_models is not None:
            self.monitor_models(self)  # each model in use, weekly: drift and calibration recorded

    @property
    def task_desk(self) -> TaskDesk:
        """Routes and escalates agent tasks (built on first use)."""
        if self._task_desk is None:
            self._task_desk = TaskDesk(self.desk, self.journeys, self.index, self.leads.current)
        return self._task_desk

    @property
    def reviews_calendar(self) -> bool:
        """The daily calendar review is one process's job: the owner of partition 0."""
        return 0 in self.parts.owned

    def _settle(self, report: RunReport) -> bool:
        """React to new lead events and send what was requested, until nothing moves; True if
        anything did."""
        any_moved = self._moved_across = False
        desk = -1 if self.works_desk else 0  # the desk looks once per settle, then after a move
        while not self._out_of_time():
            parts, stop, heads = self.parts, self._out_of_time, _Heads()
            follow = functools.partial(self._follow, heads, parts, stop)
            cut: list[bool] = []  # set when the journeys stopped at the round's last page
            moved = follow(
                self.journeys.process_lead_events, self.leads, before=self._horizon,
                pages=(max(1, self.round // self.lead_page), cut), batch_size=self.lead_page,
            )  # fmt: skip
            moved += follow(self.leads.apply_journey_updates, self.journeys)
            if self.referrals is not None:
                moved += follow(self.referrals.process_lead_events, self.leads)
                news = follow(self.leads.apply_referral_news, self.referrals)  # for leads of any partition
                self._moved_across |= news > 0
                moved += news
            report.lead_events += moved
            due = self.schedule.due(self.clock.now(), parts=parts)
            if due or not self._quiet(heads, "dispatch", self.journeys):
                d = self.deliveries.dispatch(self.leads, self.journeys, due, parts, stop=stop)
                self._mark_quiet(heads, "dispatch", self.journeys)
            else:
                d = DispatchReport()
            report.dispatch.add(d)
            report.requested += d.requested
            requested = d.requested
            effects = follow(self.leads.apply_delivery_effects, self.deliveries, self._lead_of_send)
            self.refresh_views()
            if self.works_desk and not cut and (desk != 0 or moved or requested or d.moved or effects):
                desk = self.task_desk.work(self._run_parts, self.clock.now())  # once a backlog is through
                report.task_updates += desk
            if not moved and not requested and not d.moved and not effects and not desk:
                self._quiet_heads = heads.heads
                return any_moved
            any_moved = True
        return any_moved

    def _follow(
        self, heads: _Heads, parts: Partitions, stop: Callable[[], bool], work: Callable[..., int], upstream: Any,
        *args: Any, before: datetime | None = None, pages: tuple[int, list[bool]] | None = None, **options: Any,
    ) -> int:  # fmt: skip
        """Run a follower's ``work`` over ``upstream``'s log unless that log has not moved since
        the follower last read it to its end with the same partitions (and horizon ``before``):
        no polling queries when nothing changed. Returns how many events it processed. With
        ``pages`` (a count and a flag list), it stops after that many pages and says so."""
        follower = f"{work.__self__.name}.{work.__name__}"  # type: ignore[attr-defined]
        if self._quiet(heads, follower, upstream, before):
            return 0
        extra = {"before": before, **options} if before is not None else options
        until = stop
        if pages is not None:
            limit, cut = pages
            taken = itertools.count(1)

            def until() -> bool:
                if stop():
                    return True
                if next(taken) >= limit:
                    cut.append(True)
                    return True
                return False

        done = int(work(upstream, *args, parts, stop=until, **extra))
        if not (pages and pages[1]):  # read to its end (not cut at the round's last page)
            self._mark_quiet(heads, follower, upstream, before)
        return done

    def _quiet(self, heads: _Heads, follower: str, upstream: Any, *extra: Any) -> bool:
        return self._followed.get((follower, upstream.name)) == (heads.of(upstream), self.parts.owned, extra)

    def _mark_quiet(self, heads: _Heads, follower: str, upstream: Any, *extra: Any) -> None:
        """Remember where ``upstream`` stood when the follower read it to its end (not when the
        pass ran out of time: then it stopped part way)."""
        if not self._out_of_time():
            self._followed[(follower, upstream.name)] = (heads.of(upstream), self.parts.owned, extra)

    def _out_of_time(self) -> bool:
        """A worker's tick stops starting new work after its budget, so the worker can hand
        partitions to a newly started one between ticks; what is left waits for the next tick."""
        return self._deadline is not None and monotonic() > self._deadline

    def _lead_of_send(self, send_id: UUID) -> UUID:
        delivery = self.deliveries.get_delivery(send_id)
        if delivery is None:  # pragma: no cover - an effect follows its own delivery's event
            raise LookupError(f"delivery {send_id} vanished")
        return UUID(str(delivery.lead_id))

    def sms_reply_opt_out(self, phone: str, text: str, at: datetime) -> None:
        """An SMS reply that is an opt-out keyword: withdraw SMS consent, list the number."""
        from engine.application.leads.commands import LeadRef
        from engine.domain.shared.errors import HuokeError

        try:
            lead_id = self.leads.find_lead(LeadRef(phone=phone))
        except HuokeError:
            lead_id = None  # not a lead (yet): the number is still listed
        self.leads.opt_out(lead_id, "sms", "sms reply", f"replied {text.strip()!r}", at, phone=phone)

    def last_moment(self) -> datetime | None:
        """When the store's sending stands: the time of the newest event of its deliveries (None
        before any). A store on its own clock (HUOKE_CLOCK=store) works from there."""
        head = self.deliveries.recorder.max_notification_id()
        notes = self.deliveries.recorder.select_notifications(start=head, limit=1) if head else []
        return event_time(self.deliveries.mapper.to_domain_event(notes[0])) if notes else None

    def earliest_pending(self) -> datetime | None:
        """The time of the oldest work not yet done: an unprocessed lead event, message request or
        delivery, a due timer, a held delivery. A virtual clock starts there."""
        from engine.application.delivery.app import REQUESTS_TRACKED_AS
        from engine.application.delivery.base import REQUESTED_TOPICS
        from engine.application.leads.base import EFFECT_TOPICS, UPDATE_TOPICS

        candidates = [t for t in (self.schedule.next_due(self._run_parts), self.index.next_due(self._run_parts)) if t]
        followers: list[tuple[Any, Any, list[str], str]] = [
            (self.leads, self.journeys, LEAD_TOPICS, self.leads.name),
            (self.journeys, self.deliveries, REQUESTED_TOPICS, REQUESTS_TRACKED_AS),
            (self.journeys, self.leads, UPDATE_TOPICS, self.journeys.name),
            (self.deliveries, self.leads, EFFECT_TOPICS, self.deliveries.name),
        ]
        for upstream, follower, topics, tracked_as in followers:
            moment = _first_unprocessed(upstream, first_unread(follower.recorder, tracked_as, self._run_parts), topics)
            if moment is not None:
                candidates.append(moment)
        return min(candidates, default=None)

    def close(self) -> None:
        """Release database connections (and stop the helper)."""
        if self.helper is not None:
            self.helper.close()
            self.helper = None
        for app in (self.leads, self.journeys, self.deliveries, self.referrals):
            if app is not None:
                app.close()
        for view in self.views.values():
            view.close()

    @property
    def owns_views(self) -> bool:
        """Whether this process writes every view (embedded mode, tests); readers write none."""
        return self.views_owned == frozenset(VIEW_NAMES)

    @owns_views.setter
    def owns_views(self, value: bool) -> None:
        self.views_owned = frozenset(VIEW_NAMES) if value else frozenset()

    @property
    def _reads_own_schedule(self) -> bool:
        """Whether the timer and held-message views this loop reads are its own (else they may
        lag behind the work of another process, and the loop must not wait on them)."""
        return {"index", "schedule"} <= self.views_owned

    def refresh_views(self) -> bool:
        """Advance the views this process writes to the end of their logs. Each log's head is
        read once; a view is caught up only from the logs that moved since it last was, or after
        it was reset (a view moves only forward, and only under its writer's lease, so nothing is
        skipped). True if any view had a log to read."""
        heads = _Heads()
        behind: dict[str, list[tuple[str, View, Sequence[str]]]] = {}
        for name, view in self.views.items():
            if name not in self.views_owned:
                continue
            for log, topics in view.feeds:
                if self._caught_up.get((name, log)) != (heads.of(getattr(self, log)), view.resets):
                    behind.setdefault(log, []).append((name, view, topics))
        for log, followers in behind.items():  # one read of each log for the views behind on it
            upstream = getattr(self, log)
            catch_up_together([(view, topics) for _, view, topics in followers], upstream)
            for name, view, _ in followers:
                self._caught_up[(name, log)] = (heads.of(upstream), view.resets)
        return bool(behind)

    def rebuild_views(self, names: Iterable[str]) -> None:
        """Forget the named views and rebuild them from the logs; this process becomes the
        writer of every view (the caller holds their leases)."""
        for name in names:
            self.views[name].reset()
        self.owns_views = True
        self.refresh_views()

    @property
    def views(self) -> dict[str, View]:
        """The views by name."""
        return {name: getattr(self, name) for name in VIEW_NAMES}

    def _move_clock_to(self, moment: datetime) -> None:
        advance = getattr(self.clock, "advance_to", None)
        if advance is not None:
            advance(moment)


#: A run as the engine process lends it to the helper: its number, the runs it worked alone so
#: far, its time budget's deadline and its horizon.
LentRun = tuple[int, int, float | None, datetime | None]
#: The helper's answer to a step: the timers it fired, whether anything moved, what it did, its
#: clock after, and each log's head when it found nothing more to do.
StepAnswer = tuple[int, bool, RunReport, datetime, dict[str, int]]


class _Heads:
    """Each log's head, read once per settle pass (before any follower reads the log: whatever a
    follower processes is at or before it, or moves the head for the next pass)."""

    def __init__(self) -> None:
        self.heads: dict[str, int] = {}

    def of(self, upstream: Any) -> int:
        name = upstream.name
        if name not in self.heads:
            self.heads[name] = upstream.recorder.max_notification_id() or 0
        return self.heads[name]


def _first_unprocessed(upstream: Any, position: int | None, topics: Any) -> datetime | None:
    """When the first matching notification after ``position`` happened, if there is one."""
    page = next_page(upstream.recorder, position, topics, 1000)
    while page is not None and not page.notes:
        page = next_page(upstream.recorder, page.last, topics, 1000)
    if page is None:
        return None
    return event_time(upstream.mapper.to_domain_event(page.notes[0]))
