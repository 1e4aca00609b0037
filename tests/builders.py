"""Journeys for tests, built from Python values instead of YAML text copied from file to file.

    journey("one-sms", send("hello", "sms", "yp_welcome"), done())

Steps follow each other unless they say otherwise (``next`` defaults to the following step);
the young-professional templates' variables and both locales are there by default.
"""

from __future__ import annotations

from typing import Any

import yaml

YP_VARS = {"apply_url": "https://lender.example/apply", "hotline": "400-800-8888"}
_CHAINED = ("send", "wait", "task", "update")


def journey(
    journey_id: str,
    *steps: dict[str, Any],
    entry: dict[str, Any] | None = None,
    variables: dict[str, str] | None = None,
    locales: tuple[str, ...] = ("zh-CN", "en"),
    **top: Any,
) -> str:
    """A journey definition as YAML text (for ``tests.helpers.journeys_folder`` or a file)."""
    chained = []
    for n, given in enumerate(steps):
        step = dict(given)
        if "next" not in step and any(k in step for k in _CHAINED) and n + 1 < len(steps):
            step["next"] = steps[n + 1]["id"]
        chained.append(step)
    data = {
        "id": journey_id,
        "locales": list(locales),
        "vars": dict(YP_VARS if variables is None else variables),
        "entry": entry or {"on": "lead_captured"},
        **top,
        "steps": chained,
    }
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def send(step_id: str, channel: str, template: str, **options: Any) -> dict[str, Any]:
    return {"id": step_id, "send": {"channel": channel, "template": template}, **options}


def wait(step_id: str, duration: str | dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"id": step_id, "wait": duration, **options}


def done(step_id: str = "done", reason: str = "completed") -> dict[str, Any]:
    return {"id": step_id, "exit": reason}
