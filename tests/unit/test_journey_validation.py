"""Journeys are refused before they run, with file, line, step and problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.adapters.templates import JinjaRenderer
from engine.adapters.yaml_files import load_yaml, strip_lines
from engine.application.journeys.validation import load_definitions
from engine.domain.journeys.parsing import parse_journey
from engine.domain.shared.errors import JourneyValidationError
from tests.builders import journey, send
from tests.helpers import journeys_folder

ROOT = Path(__file__).resolve().parents[2]

VALID_STEPS: list[dict[str, Any]] = [
    {"id": "a", "send": {"channel": "email", "template": "t"}, "next": "w"},
    {"id": "w", "wait": "1d", "next": "z"},
    {"id": "z", "exit": "done"},
]


def problems_of(data: dict[str, Any]) -> list[str]:
    base = {"id": "j", "entry": {"on": "lead_captured"}, "steps": VALID_STEPS}
    with pytest.raises(JourneyValidationError) as info:
        parse_journey({**base, **data}, "j.yaml")
    return info.value.problems


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"steps": [{"id": "a", "send": {"channel": "email", "template": "t"}, "next": "nowhere"}]},
            "step 'a': leads to unknown step 'nowhere'",
        ),
        ({"steps": [{"id": "a", "wait": "soon", "next": None}]}, "wait needs a positive duration"),
        ({"steps": [{"id": "a", "send": {"channel": "fax", "template": "t"}}]}, "unknown channel 'fax'"),
        ({"steps": [{"id": "a", "exit": "x"}, {"id": "b", "exit": "y"}]}, "step 'b': is unreachable"),
        (
            {
                "steps": [
                    {"id": "a", "send": {"channel": "sms", "template": "t"}, "next": "b"},
                    {"id": "b", "send": {"channel": "sms", "template": "t"}, "next": "a"},
                ]
            },
            "is on a loop without a wait step",
        ),
        ({"entry": {"on": "lead_captured", "when": {"field": "shoe_size", "eq": 42}}}, "unknown field 'shoe_size'"),
        (
            {"entry": {"on": "whenever"}},
            "'on' must be lead_captured, stage_reached, segment_entered, lifecycle_event or consent_requested",
        ),
        ({"entry": {"on": "lifecycle_event", "event": "wedding"}}, "lifecycle_event needs 'event'"),
        (
            {"entry": {"on": "lead_captured", "key": True}},
            "'key: true' (one run per application) needs on: lifecycle_event",
        ),
        ({"entry": {"on": "lead_captured", "reentry": "sometimes"}}, "'reentry' must be never, after_exit or always"),
        ({"entry": {"on": "lead_captured", "cap": 0}}, "'cap' must be a positive whole number"),
        (
            {
                "steps": [
                    {"id": "a", "split": {"arms": [{"percent": 60, "next": "z"}, {"percent": 30, "next": "z"}]}},
                    {"id": "z", "exit": "done"},
                ]
            },
            "split percentages add up to 90, not 100",
        ),
        (
            {
                "steps": [
                    {"id": "a", "wait_for": {"event": "loan_funded", "timeout": "7d"}, "next": "z"},
                    {"id": "z", "exit": "done"},
                ]
            },
            "wait_for needs 'next' (when the event comes) and 'on_timeout'",
        ),
        (
            {
                "steps": [
                    {"id": "a", "wait_for": {"event": "birthday", "timeout": "7d"}, "next": "z", "on_timeout": "z"},
                    {"id": "z", "exit": "done"},
                ]
            },
            "wait_for needs 'event'",
        ),
        (
            {
                "steps": [
                    {"id": "a", "wait": {"until_field": "last_funded_at", "offset": "3y"}, "next": "z"},
                    {"id": "z", "exit": "done"},
                ]
            },
            "waits on 'last_funded_at', which a lead may not have",
        ),
        (
            {"steps": [{"id": "a", "wait": {"until": "2026-05-01T09:00"}, "next": "z"}, {"id": "z", "exit": "done"}]},
            "'until' needs a UTC offset",
        ),
        (
            {
                "steps": [
                    {"id": "a", "send": {"channel": "sms", "template": "t"}, "stale": "flood", "next": "z"},
                    {"id": "z", "exit": "done"},
                ]
            },
            "'stale' must be skip, send or reschedule",
        ),
        (
            {"steps": [{"id": "a", "task": {"kind": "fax", "queue": "q"}, "next": "z"}, {"id": "z", "exit": "done"}]},
            "task needs {kind: call|visit",
        ),
        ({"goals": ["rich"]}, "unknown stage 'rich'"),
        (
            {"steps": [{"id": "a", "send": {"channel": "sms", "template": "t"}, "wait": "1d"}]},
            "a step needs exactly one of send, wait, wait_for, branch, split, task, update, exit",
        ),
        (
            {
                "steps": [
                    {
                        "id": "a",
                        "branch": {
                            "on": "field",
                            "field": "income",
                            "cases": [{"when": 1, "next": "a"}],
                            "default": "a",
                        },
                    }
                ]
            },
            "unknown field 'income'",
        ),
    ],
)
def test_refuses_bad_journey_with_clear_problem(data: dict[str, Any], expected: str) -> None:
    assert any(expected in p for p in problems_of(data)), problems_of(data)


def test_a_branch_on_age_may_not_lead_to_different_offers() -> None:
    problems = problems_of(
        {
            "offers": ["low_rate_offer"],
            "steps": [
                {
                    "id": "age",
                    "branch": {
                        "on": "field",
                        "field": "age",
                        "cases": [{"when": {"gte": 60}, "next": "call"}],
                        "default": "offer",
                    },
                },
                {"id": "call", "send": {"channel": "sms", "template": "advisor"}, "next": "z"},
                {"id": "offer", "send": {"channel": "sms", "template": "low_rate_offer"}, "next": "z"},
                {"id": "z", "exit": "done"},
            ],
        }
    )
    assert any("branches on age (a prohibited basis)" in p for p in problems), problems


def test_a_branch_on_age_may_change_tone_and_channel() -> None:
    parse_journey(
        {
            "id": "j",
            "entry": {"on": "lead_captured"},
            "offers": ["low_rate_offer"],
            "steps": [
                {
                    "id": "age",
                    "branch": {
                        "on": "field",
                        "field": "age",
                        "cases": [{"when": {"gte": 60}, "next": "letter"}],
                        "default": "sms",
                    },
                },
                {"id": "letter", "send": {"channel": "email", "template": "low_rate_offer"}, "next": "z"},
                {"id": "sms", "send": {"channel": "sms", "template": "low_rate_offer"}, "next": "z"},
                {"id": "z", "exit": "done"},
            ],
        },
        "ok.yaml",
    )


def test_problem_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "id: bad\nentry: {on: lead_captured}\nsteps:\n  - id: a\n    send: {channel: sms, template: t}\n"
        "    next: ghost\n"
    )
    with pytest.raises(JourneyValidationError) as info:
        parse_journey(load_yaml(path), str(path))
    assert info.value.problems == [f"{path}:4: step 'a': leads to unknown step 'ghost'"]


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: x\nsteps: [\n")
    with pytest.raises(JourneyValidationError) as info:
        load_yaml(path)
    assert info.value.problems[0].startswith(f"{path}:3:")


def _folder_with(tmp_path: Path, journey_yaml: str) -> Path:
    return journeys_folder(tmp_path, j=journey_yaml)


def test_unknown_template_is_refused(tmp_path: Path) -> None:
    folder = _folder_with(
        tmp_path,
        "id: j\nentry: {on: lead_captured}\nsteps:\n  - id: a\n    send: {channel: email, template: no_such}\n",
    )
    with pytest.raises(JourneyValidationError) as info:
        load_definitions(folder, JinjaRenderer(ROOT / "templates"), load_yaml, strip_lines)
    assert any("unknown email template 'no_such'" in p for p in info.value.problems)


def test_template_needing_optional_field_is_refused(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    import shutil

    shutil.copytree(ROOT / "templates", templates)
    for locale in ("zh-CN", "en"):
        (templates / "sms" / "amount" / f"{locale}.txt.j2").parent.mkdir(parents=True, exist_ok=True)
        (templates / "sms" / "amount" / f"{locale}.txt.j2").write_text("{{ first_name }}: {{ loan_amount }}")
    folder = _folder_with(
        tmp_path, "id: j\nentry: {on: lead_captured}\nsteps:\n  - id: a\n    send: {channel: sms, template: amount}\n"
    )
    with pytest.raises(JourneyValidationError) as info:
        load_definitions(folder, JinjaRenderer(templates), load_yaml, strip_lines)
    assert any("uses 'loan_amount', which a lead may not have" in p for p in info.value.problems)
    # Requiring the field at entry makes the same template acceptable.
    (folder / "j.yaml").write_text(
        "id: j\nentry: {on: lead_captured, requires: [loan_amount]}\nsteps:\n"
        "  - id: a\n    send: {channel: sms, template: amount}\n"
    )
    assert load_definitions(folder, JinjaRenderer(templates), load_yaml, strip_lines).journeys


def test_missing_locale_is_refused(tmp_path: Path) -> None:
    folder = _folder_with(
        tmp_path,
        "id: j\nlocales: [zh-CN, en, fr]\nentry: {on: lead_captured}\nsteps:\n"
        "  - id: a\n    send: {channel: sms, template: yp_welcome}\n",
    )
    with pytest.raises(JourneyValidationError) as info:
        load_definitions(folder, JinjaRenderer(ROOT / "templates"), load_yaml, strip_lines)
    assert any("has no fr version" in p for p in info.value.problems)


def test_every_bundled_journey_is_valid() -> None:
    """Templates exist in every locale, segments resolve, every step reachable, every path ends."""
    defs = load_definitions(ROOT / "journeys", JinjaRenderer(ROOT / "templates"), load_yaml, strip_lines)
    ids = {j.id for j, _ in defs.journeys}
    assert ids == {
        "young-professionals",
        "sme-one-stop",
        "seniors-advisor",
        "application-follow-up",
        "email-confirmation",
        "renovation-cross-sell",
        "after-funding",
        "referral-invite",
        "referral-thanks",
        "referral-news",
    }
    assert defs.warnings == ()  # every journey offering a product keeps out the leads none fits
    audiences = {j.audience for j, _ in defs.journeys if j.audience}
    assert audiences == {"young_professional", "sme", "senior"}
    for j, _ in defs.journeys:
        assert set(j.locales) == {"zh-CN", "en"}


def test_every_step_kind_has_one_parser_and_the_parser_names_the_kinds_from_the_types() -> None:
    from typing import get_args

    from engine.domain.journeys.journey import STEP_KINDS, Step
    from engine.domain.journeys.step_parsers import PARSERS

    assert len(STEP_KINDS) == len(get_args(Step)) == len(set(STEP_KINDS))
    assert set(PARSERS) == set(STEP_KINDS)
    with pytest.raises(JourneyValidationError) as info:
        parse_journey({"id": "j", "entry": {"on": "lead_captured"}, "steps": [{"id": "a", "jump": "b"}]}, "j.yaml")
    assert f"a step needs exactly one of {', '.join(STEP_KINDS)}" in info.value.problems[0]


def _sms_templates(tmp_path: Path, **texts: str) -> Path:
    """The bundled templates plus SMS templates ``name=text`` (the same text in both locales)."""
    import shutil

    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    for name, text in texts.items():
        (templates / "sms" / name).mkdir(parents=True)
        for locale in ("zh-CN", "en"):
            (templates / "sms" / name / f"{locale}.txt.j2").write_text(text, encoding="utf-8")
    return templates


def _one_sms(template: str, purpose: str = "marketing", journey_id: str = "j") -> str:
    return journey(journey_id, send("a", "sms", template), purpose=purpose)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{{ first_name }}: rates from 3.9% a year!", "states a rate"),
        ("{{ first_name }}: our best rate, ask us", "states a rate"),
        ("{{ first_name }}：低至年化3.9%", "states a rate"),
        (
            "{{ first_name }}: 3.9%{% if matched_apr is defined %} (APR {{ matched_apr }}){% endif %}",
            "writes a rate figure (en.txt: '3.9%')",
        ),
    ],
)
def test_a_marketing_message_that_states_a_rate_must_show_the_apr(tmp_path: Path, text: str, problem: str) -> None:
    templates = _sms_templates(tmp_path, promo=text)
    folder = journeys_folder(tmp_path, j=_one_sms("promo"))
    with pytest.raises(JourneyValidationError) as info:
        load_definitions(folder, JinjaRenderer(templates), load_yaml, strip_lines)
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_the_matched_apr_under_a_defined_test_passes_and_service_messages_may_mention_the_apr(tmp_path: Path) -> None:
    templates = _sms_templates(
        tmp_path,
        promo="{{ first_name }}{% if matched_apr is defined %}: APR {{ matched_apr }}, every fee included{% endif %}",
        approved="{{ first_name }}: approved. Check the APR in your contract.",
        unguarded="{{ first_name }}: APR {{ matched_apr }}",
    )
    ok = journeys_folder(
        tmp_path / "ok", j=_one_sms("promo"), s=_one_sms("approved", "service").replace("id: j", "id: s")
    )
    assert len(load_definitions(ok, JinjaRenderer(templates), load_yaml, strip_lines).journeys) == 2
    bad = journeys_folder(tmp_path / "bad", j=_one_sms("unguarded"))
    with pytest.raises(JourneyValidationError) as info:
        load_definitions(bad, JinjaRenderer(templates), load_yaml, strip_lines)
    assert any("uses 'matched_apr', which a lead may not have" in p for p in info.value.problems)


def test_a_journey_offering_the_matched_product_to_leads_none_fits_is_warned_about(tmp_path: Path) -> None:
    templates = _sms_templates(
        tmp_path, promo="{{ first_name }}{% if matched_apr is defined %}: APR {{ matched_apr }}{% endif %}"
    )
    loose = journeys_folder(tmp_path / "loose", j=_one_sms("promo"))
    [warning] = load_definitions(loose, JinjaRenderer(templates), load_yaml, strip_lines).warnings
    assert "j.yaml:" in warning and "step 'a': template 'promo' offers the matched product (matched_apr)" in warning
    assert warning.endswith("declare `product: <loan type>` or branch on product_fit")
    declared = journeys_folder(tmp_path / "declared", j=journey("j", send("a", "sms", "promo"), product="consumer"))
    filtered = journeys_folder(
        tmp_path / "filtered",
        j=journey(
            "j", send("a", "sms", "promo"), entry={"on": "lead_captured", "when": {"field": "product_fit", "eq": "fit"}}
        ),
    )
    for folder in (declared, filtered):
        assert load_definitions(folder, JinjaRenderer(templates), load_yaml, strip_lines).warnings == ()


def test_the_bundled_rate_messages_show_the_matched_apr_or_say_where_it_is() -> None:
    renderer = JinjaRenderer(ROOT / "templates")
    base = {"first_name": "Ann", "apply_url": "https://lender.example/apply", "hotline": "400", "sender_name": "B"}
    matched = {**base, "matched_apr": "7.20%", "matched_product": "Home renovation loan"}
    sms = renderer.render("sms", "renovation_reminder", "general", "en", matched).text
    assert "APR 7.20% incl. all fees" in sms
    assert "APR incl. all fees" in renderer.render("sms", "renovation_reminder", "general", "en", base).text
    for template in ("renovation_offer", "yp_finish_application"):
        for locale in ("en", "zh-CN"):
            mail = renderer.render(
                "email", template, "general", locale, {**matched, "postal_address": "1 Rd", "unsubscribe_url": "u"}
            )
            assert "7.20%" in mail.text and "7.20%" in (mail.html or "")


CLICK_WAIT = {"id": "w", "wait_for": {"click": "a", "timeout": "2d"}, "next": "z", "on_timeout": "z"}


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            [{**CLICK_WAIT, "wait_for": {"click": "nope", "timeout": "2d"}}],
            "waits for a click on 'nope', which is not a send step",
        ),
        (
            [{**CLICK_WAIT, "wait_for": {"click": "t", "timeout": "2d"}}],
            "waits for a click on 't', which is not a send step",
        ),
        (
            [
                {"id": "h", "send": {"channel": "webhook", "template": "t"}, "next": "w"},
                {**CLICK_WAIT, "wait_for": {"click": "h", "timeout": "2d"}},
            ],
            "a webhook step: its links are not tracked",
        ),
        (
            [{"id": "b", "branch": {"on": "clicked", "cases": [{"when": "wx", "next": "z"}], "default": "z"}}],
            "branches on a click on 'wx', which is not a send step",
        ),
        ([{**CLICK_WAIT, "wait_for": {"timeout": "2d"}}], "or 'click': a send step of this journey"),
    ],
)
def test_a_click_wait_or_branch_must_name_a_step_that_sends_mail_or_sms(
    steps: list[dict[str, Any]], expected: str
) -> None:
    base = [
        {"id": "a", "send": {"channel": "email", "template": "t"}, "next": steps[0]["id"]},
        {"id": "t", "wait": "1d", "next": "z"},
    ]
    problems = problems_of({"steps": [*base, *steps, {"id": "z", "exit": "done"}]})
    assert any(expected in p for p in problems), problems


def test_a_click_wait_and_branch_parse_and_draw() -> None:
    from engine.application.journeys.diagrams import mermaid

    parsed = parse_journey(
        {
            "id": "j",
            "entry": {"on": "lead_captured"},
            "steps": [
                {"id": "a", "send": {"channel": "email", "template": "t"}, "next": "w"},
                CLICK_WAIT,
                {"id": "z", "branch": {"on": "clicked", "cases": [{"when": "a", "next": "y"}], "default": "y"}},
                {"id": "y", "exit": "done"},
            ],
        },
        "j.yaml",
    )
    assert "link_clicked" in parsed.watched_events()
    drawn = mermaid(parsed)
    assert "wait for a click on a (≤ 2d)" in drawn and "clicked a" in drawn


def test_audience_is_documentation_any_text_is_kept() -> None:
    parsed = parse_journey(
        {"id": "j", "audience": "mixed: seniors and their children", "entry": {"on": "lead_captured"},
         "steps": VALID_STEPS},
        "j.yaml",
    )  # fmt: skip
    assert parsed.audience == "mixed: seniors and their children"
