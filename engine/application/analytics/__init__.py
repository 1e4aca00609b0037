"""What a lender's marketing team reads: attribution, cost and return, lift of splits with its
confidence, daily trends, score bands, journey flows and the officers' task queues.

Every count comes from the views (projections of the event log); each report is a plain
document (the JSON the CLI prints, the API returns and the dashboard draws). ``Scope`` narrows a
report to the leads captured in a date range (the lender's days), one source channel or one
journey; the cost report spreads each cost evenly over its period's days and sets the part in
scope against the leads captured in those days. One module per family of reports.
"""

from engine.application.analytics.common import ALL_LEADS, MEASURES, Scope
from engine.application.analytics.engagement import (
    DAILY_MEASURES,
    DAILY_SCHEMA,
    ENGAGEMENT_SCHEMA,
    daily_report,
    engagement_report,
)
from engine.application.analytics.experiments import EXPERIMENTS_SCHEMA, experiments_report
from engine.application.analytics.marketing import (
    ATTRIBUTION_SCHEMA,
    COSTS_SCHEMA,
    REWARDS,
    attribution_report,
    costs_report,
    referral_costs,
)
from engine.application.analytics.operations import FLOWS_SCHEMA, TASKS_SCHEMA, flows_report, tasks_report
from engine.application.analytics.scores import MONITORING_SHOWN, SCORES_SCHEMA, scores_report

__all__ = [
    "ALL_LEADS",
    "ATTRIBUTION_SCHEMA",
    "COSTS_SCHEMA",
    "DAILY_MEASURES",
    "DAILY_SCHEMA",
    "ENGAGEMENT_SCHEMA",
    "EXPERIMENTS_SCHEMA",
    "FLOWS_SCHEMA",
    "MEASURES",
    "MONITORING_SHOWN",
    "REWARDS",
    "SCORES_SCHEMA",
    "TASKS_SCHEMA",
    "Scope",
    "",
    "attribution_report",
    "costs_report",
    "daily_report",
    "engagement_report",
    "experiments_report",
    "flows_report",
    "referral_costs",
    "scores_report",
    "tasks_report",
]
