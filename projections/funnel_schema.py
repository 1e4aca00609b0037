"""The funnel view's tables: what each one keeps and why (created by ``huoke db init``; each
name is formatted with the view's schema)."""

from __future__ import annotations

from engine.domain.marketing.costs import DIMENSIONS
from engine.domain.shared.values import MILESTONES
from projections.funnel_queries import CUBE_COUNTS


def funnel_ddl(old: str) -> list[str]:
    """Every table and index of the funnel view; ``old`` names version 2's table of each lead's
    first source (lead_facts holds it now), dropped."""
    return [
        f"DROP TABLE IF EXISTS {old}",
        "CREATE TABLE IF NOT EXISTS {t_funnel_leads} (lead_id TEXT PRIMARY KEY, "
        "source_channel TEXT NOT NULL, audience TEXT NOT NULL, stage TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS funnel_leads_stage ON {t_funnel_leads} (stage, lead_id)",
        # Covers the count of leads now at each stage (read without touching the table).
        "CREATE INDEX IF NOT EXISTS funnel_leads_counts ON {t_funnel_leads} (stage, audience, source_channel)",
        "CREATE TABLE IF NOT EXISTS {t_funnel_reached} (lead_id TEXT NOT NULL, "
        "stage TEXT NOT NULL, PRIMARY KEY (lead_id, stage))",
        "CREATE TABLE IF NOT EXISTS {t_funnel_messages} (journey_id TEXT NOT NULL, "
        "step TEXT NOT NULL, channel TEXT NOT NULL, outcome TEXT NOT NULL, "
        "n BIGINT NOT NULL, PRIMARY KEY (journey_id, step, channel, outcome))",
        # One row per lead: when it was captured (ISO, as the lead said), where it came from
        # first and last, when (UTC, ts format) it first reached each stage, what it borrowed.
        "CREATE TABLE IF NOT EXISTS {t_lead_facts} (lead_id TEXT PRIMARY KEY, captured_at TEXT NOT NULL, "
        "captured_day TEXT NOT NULL, "
        + "".join(f"first_{d} TEXT NOT NULL, last_{d} TEXT NOT NULL, " for d in DIMENSIONS)
        + "touches INTEGER NOT NULL, "
        + "".join(f"{m}_at TEXT, " for m in MILESTONES)
        + "lost_at TEXT, funded_loans INTEGER NOT NULL, funded_volume BIGINT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS lead_facts_captured ON {t_lead_facts} (captured_day)",
        # Activity per day (the lender's) and the lead's first-touch channel: leads captured,
        # stages first reached, loans funded (n) and their volume (amount).
        "CREATE TABLE IF NOT EXISTS {t_daily_counts} (day TEXT NOT NULL, channel TEXT NOT NULL, "
        "measure TEXT NOT NULL, n BIGINT NOT NULL, amount BIGINT NOT NULL, PRIMARY KEY (day, channel, measure))",
        "CREATE TABLE IF NOT EXISTS {t_daily_messages} (day TEXT NOT NULL, journey_id TEXT NOT NULL, "
        "channel TEXT NOT NULL, outcome TEXT NOT NULL, n BIGINT NOT NULL, "
        "PRIMARY KEY (day, journey_id, channel, outcome))",
        "CREATE TABLE IF NOT EXISTS {t_score_bands} (lead_id TEXT NOT NULL, kind TEXT NOT NULL, "
        "band TEXT NOT NULL, PRIMARY KEY (lead_id, kind))",
        "CREATE TABLE IF NOT EXISTS {t_split_enrolments} (enrolment_id TEXT PRIMARY KEY, lead_id TEXT NOT NULL, "
        "journey_id TEXT NOT NULL)",
        # Each split assignment, and how long after it the lead first reached each stage.
        "CREATE TABLE IF NOT EXISTS {t_split_arms} (enrolment_id TEXT NOT NULL, step TEXT NOT NULL, "
        "lead_id TEXT NOT NULL, journey_id TEXT NOT NULL, arm TEXT NOT NULL, assigned_at TEXT NOT NULL, "
        + "".join(f"{m}_after NUMERIC, " for m in MILESTONES)
        + "clicked_after NUMERIC, PRIMARY KEY (enrolment_id, step))",
        "CREATE INDEX IF NOT EXISTS split_arms_lead ON {t_split_arms} (lead_id)",
        # The first click of each kind (a person's, a scanner's) on each message, for unique
        # clicks per step and what the clickers did after.
        "CREATE TABLE IF NOT EXISTS {t_message_clicks} (send_id TEXT NOT NULL, kind TEXT NOT NULL, "
        "lead_id TEXT NOT NULL, journey_id TEXT NOT NULL, step TEXT NOT NULL, channel TEXT NOT NULL, "
        "at TEXT NOT NULL, PRIMARY KEY (send_id, kind))",
        "CREATE INDEX IF NOT EXISTS split_arms_journey ON {t_split_arms} (journey_id, assigned_at)",
        # Each message waiting now (deferred, not yet settled) and how: "retrying" after
        # channel trouble, "held" for a contact window, a cap or its enrolment's order.
        "CREATE TABLE IF NOT EXISTS {t_waiting_sends} (send_id TEXT PRIMARY KEY, journey_id TEXT NOT NULL, "
        "step TEXT NOT NULL, channel TEXT NOT NULL, kind TEXT NOT NULL)",
        # The lead facts summed by capture day and attribution, once by each lead's first
        # touch and once by its last: what the reports and the dashboard group (a few
        # thousand rows however many leads there are).
        "CREATE TABLE IF NOT EXISTS {t_lead_cube} (touch TEXT NOT NULL, day TEXT NOT NULL, "
        + "".join(f"{d} TEXT NOT NULL, " for d in DIMENSIONS)
        + "".join(f"{m} BIGINT NOT NULL, " for m in CUBE_COUNTS)
        + "volume BIGINT NOT NULL, PRIMARY KEY (touch, day, "
        + ", ".join(DIMENSIONS)
        + "))",
        # Leads per score band by capture day and first-touch channel, with how many applied
        # and were funded (kept as scores and stages change: no join of the leads per read).
        "CREATE TABLE IF NOT EXISTS {t_band_counts} (kind TEXT NOT NULL, band TEXT NOT NULL, day TEXT NOT NULL, "
        "channel TEXT NOT NULL, leads BIGINT NOT NULL, applied BIGINT NOT NULL, funded BIGINT NOT NULL, "
        "PRIMARY KEY (kind, band, day, channel))",
        # Leads that ever reached each stage, by their audience now (kept as audiences change).
        "CREATE TABLE IF NOT EXISTS {t_reached_counts} (stage TEXT NOT NULL, audience TEXT NOT NULL, "
        "n BIGINT NOT NULL, PRIMARY KEY (stage, audience))",
    ]
