"""The funnel view's bookkeeping of messages that is more than a count: how many wait now (and
why), and each message's first click with what it means for the lead's split arms. Called by
``FunnelCounts.apply`` with the view as ``self``."""

from __future__ import annotations

from typing import Any

from projections.journey_index import parse_ts, ts


def waiting_moved(self: Any, c: Any, e: Any, kind: str | None) -> None:
    """Move a message's "waiting now" count: into ``kind`` ("retrying" or "held"), or out of
    waiting (None) once it is settled or handed to an operator."""
    send_id = str(e.originator_id)
    if kind is None:  # settled: one statement (most messages never waited)
        c.execute(self.q("DELETE FROM {t_waiting_sends} WHERE send_id = ? RETURNING kind"), (send_id,))
    else:
        c.execute(self.q("SELECT kind FROM {t_waiting_sends} WHERE send_id = ?"), (send_id,))
    row = c.fetchone()
    was = dict(row)["kind"] if row is not None else None
    if was == kind:
        return
    if was is not None:
        self.count(c, "funnel_messages", (e.journey_id, e.step, e.channel, was), (-1,))
    if kind is None:
        return
    self.count(c, "funnel_messages", (e.journey_id, e.step, e.channel, kind), (1,))
    c.execute(
        self.q(
            "INSERT INTO {t_waiting_sends} VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (send_id) DO UPDATE SET kind = excluded.kind"
        ),
        (send_id, e.journey_id, e.step, e.channel, kind),
    )


def first_click(self: Any, c: Any, e: Any) -> None:
    """A message's first click of a kind: a unique click of its step (a person's, or a
    scanner's, counted apart); a person's also counts for the lead's split arms in the journey."""
    c.execute(self.q("SELECT 1 FROM {t_message_clicks} WHERE send_id = ? AND kind = ?"), (str(e.originator_id), e.kind))
    if c.fetchone() is not None:
        return
    c.execute(
        self.q("INSERT INTO {t_message_clicks} VALUES (?, ?, ?, ?, ?, ?, ?)"),
        (str(e.originator_id), e.kind, str(e.lead_id), e.journey_id, e.step, e.channel, ts(e.at)),
    )
    outcome = "clicked" if e.kind == "human" else "scanner clicked"
    self.count(c, "funnel_messages", (e.journey_id, e.step, e.channel, outcome), (1,))
    if e.kind != "human":
        return
    c.execute(
        self.q(
            "SELECT enrolment_id, step, assigned_at FROM {t_split_arms} WHERE lead_id = ? AND journey_id = ? "
            "AND clicked_after IS NULL"
        ),
        (str(e.lead_id), e.journey_id),
    )
    for row in [dict(r) for r in c.fetchall()]:
        seconds = (e.at - parse_ts(row["assigned_at"])).total_seconds()
        if seconds >= 0:
            c.execute(
                self.q("UPDATE {t_split_arms} SET clicked_after = ? WHERE enrolment_id = ? AND step = ?"),
                (seconds, row["enrolment_id"], row["step"]),
            )
