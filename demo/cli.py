"""``huoke demo``: the bundled journeys over a realistic generated sample for 60 simulated days.

The demo is a package of its own: sample data (``demo.data``), the day-by-day simulation
(``demo.runner``) and this command, which ``huoke`` picks up through the ``huoke.commands``
entry point; nothing in ``engine`` imports it (an import contract says so).
"""

from __future__ import annotations

import secrets
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr

from engine.entrypoints.cli_common import JsonOpt, console, emit_json, err, fail, settings
from engine.presentation import reports


def register(app: typer.Typer) -> None:
    """Add ``huoke demo`` to the CLI."""
    app.command("demo")(demo)


#: The file that marks a folder as the demo's own (so --dir never deletes anything else).
DEMO_MARKER = ".huoke-demo"


def _program() -> str:
    """How the reader's shell runs huoke: ``huoke`` when it is on the PATH, else the path this
    command was started by (``.venv/bin/huoke`` after ``make demo``)."""
    started = Path(sys.argv[0])
    found = shutil.which("huoke")
    if found and started.name == "huoke" and Path(found).resolve() == started.resolve():
        return "huoke"
    if started.name != "huoke":
        return "huoke"  # started some other way (python -m, a test): the installed name
    try:
        return str(started.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(started)


def demo(
    leads: Annotated[int, typer.Option(help="how many leads to simulate")] = 3000,
    days: Annotated[int, typer.Option(help="how many days to simulate")] = 60,
    folder: Annotated[Path, typer.Option("--dir", help="where the demo keeps its data and outbox")] = Path("var/demo"),
    as_json: JsonOpt = False,
) -> None:
    """Run the bundled journeys over a realistic sample for 60 simulated days; print the funnel."""
    from demo.runner import run_demo
    from engine.bootstrap import meta_for

    base = settings()
    marker = folder / DEMO_MARKER
    if folder.exists() and any(folder.iterdir()):
        if not marker.exists():
            fail(f"{folder} is not empty and was not made by huoke demo: nothing was deleted; choose another --dir")
        shutil.rmtree(folder)  # a previous demo's folder: start afresh
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text("made by huoke demo; `huoke demo --dir` may delete and remake this folder\n")
    # The demo keeps its own store; e-mail goes where HUOKE_EMAIL_TRANSPORT says (the outbox by
    # default, or an SMTP server such as Mailpit with HUOKE_EMAIL_TRANSPORT=smtp).
    s = base.model_copy(update={"data_dir": folder / "data", "outbox_dir": folder / "outbox", "database_url": ""})
    # Tracked links point at huoke serve on this machine, so a link opened from the outbox works.
    s = s if s.public_url else s.model_copy(update={"public_url": "http://127.0.0.1:8080"})
    store_env = {
        "HUOKE_DATA_DIR": str(s.data_dir.resolve()),
        "HUOKE_OUTBOX_DIR": str(s.outbox_dir.resolve()),
        "HUOKE_PUBLIC_URL": s.public_url,
        "HUOKE_CLOCK": "store",  # its commands (tasks complete, opt-outs) happen when the simulation stands
    }
    if s.secret_problems():  # the demo signs its links with keys of its own, never the empty or a published one
        own = {"unsubscribe_secret": secrets.token_urlsafe(32), "suppression_pepper": secrets.token_urlsafe(32)}
        s = s.model_copy(update={**{k: SecretStr(v) for k, v in own.items()}, "unsubscribe_old_secrets": SecretStr("")})
        store_env |= {f"HUOKE_{k.upper()}": v for k, v in own.items()}
    # What the demo's store needs to be opened again (huoke serve for the dashboard, reports):
    # its folders and, when the demo made them, its own link key and pepper. Private, like the store.
    (folder / "huoke.env").write_text(
        "# made by huoke demo; load with: set -a; . "
        + str(folder / "huoke.env")
        + "; set +a\n"
        + "".join(f"{k}={v}\n" for k, v in store_env.items()),
        encoding="utf-8",
    )
    doc = run_demo(s, leads, days, folder, quiet=as_json, console=err)
    meta_for(s).reach(datetime.fromisoformat(doc["clock_reached"]))  # where its later commands happen
    if as_json:
        emit_json(doc)
        return
    for shown in reports.funnel(doc["funnel"]):
        console.print(shown)
    console.print()
    for m in doc["models"]:
        metrics, t = m["metrics"], m["training"]
        console.print(
            f"{m['kind']} model v{m['version']}: AUC {metrics['auc']}, Gini {metrics['gini']}, KS {metrics['ks']} "
            f"on {t['test_rows']} held-out rows ({t['holdout']}; trained on {t['train_rows']} from {t['source']})"
        )
    _print_uplift(doc["uplift"])
    bands = ", ".join(f"{b['kind']} {b['band']}: {b['leads']}" for b in doc["score_bands"])
    console.print(f"leads by score band — {bands}")
    where = f"in {folder / 'outbox' / 'email'}" if s.email_transport == "outbox" else f"to {s.smtp_host}:{s.smtp_port}"
    console.print(
        f"\n{doc['outbox']['emails']} e-mails sent {where}, "
        f"{doc['outbox']['sms']} SMS in {folder / 'outbox' / 'sms.jsonl'}"
    )
    console.print(
        f"{doc['agent_tasks']} open call/visit tasks for loan officers "
        f"({doc['agent_tasks_by_status']['assigned']} routed to an officer, "
        f"{doc['agent_tasks_by_status']['open']} waiting in their queue, "
        f"{doc['agent_tasks_escalated']} escalated overdue: huoke tasks list); "
        f"{sum(h['n'] for h in doc['held'])} message(s) held at the end (quiet hours, caps, retries)"
    )
    clicks = doc["engagement"]
    if clicks["sent"]:
        console.print(
            f"clicks on tracked links: {clicks['clicked']:,} of {clicks['sent']:,} messages "
            f"({(clicks['click_through_rate'] or 0) * 100:.1f}%), {clicks['scanner_clicked']:,} gateway scanner "
            "clicks not counted; by journey: "
            + ", ".join(f"{j} {(c['click_through_rate'] or 0) * 100:.1f}%" for j, c in clicks["journeys"].items())
        )
    ref = doc["referrals"]
    per_funded = f"¥{ref['cost_per_funded']:,.2f}" if ref["cost_per_funded"] is not None else "—"
    statuses = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in ref["by_status"].items())
    held = f"{len(ref['held'])} reward(s) held for review" + (":" if ref["held"] else "")
    console.print(
        "; ".join(
            part
            for part in (
                f"referrals: {ref['referrals']} made, {ref['funded']} funded, rewards ¥{ref['reward_cost']:,.0f}, "
                f"{per_funded} per funded referral (report referrals)",
                statuses,
                f"¥{ref['paid_cash']:,.0f} paid to referrers in cash",
                held,
            )
            if part
        )
    )
    for held in ref["held"]:
        console.print(f"  {held['referral_id'][:8]}  {'; '.join(held['reasons'])}", highlight=False)
    huoke, env = _program(), f"HUOKE_DATA_DIR={folder / 'data'}"
    console.print(f"try: {env} {huoke} leads show {doc['example_lead']}", highlight=False, soft_wrap=True)
    for command in ("referrals review", "report journeys", "report attribution", "report experiments",
                    "report engagement"):  # fmt: skip
        console.print(f"     {env} {huoke} {command}", highlight=False, soft_wrap=True)
    console.print(
        f"the dashboard: set -a; . {folder / 'huoke.env'}; set +a; {huoke} api-keys create --role marketer "
        f"--name me; {huoke} serve  (then open http://127.0.0.1:8080/dashboard with the key)",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"simulated {days} days for {leads} leads in {doc['seconds']:.1f}s")


def _print_uplift(uplift: dict[str, Any]) -> None:
    """The uplift model the demo learnt from its holdout, and what targeting by it gains."""
    if "skipped" in uplift:
        console.print(f"uplift model for {uplift['journey']}: not trained — {uplift['skipped']}")
    else:
        m, truth = uplift["metrics"], uplift["truth"]
        share = truth["top_30_share_of_extra_applications"]
        console.print(
            f"uplift model v{uplift['version']} for {uplift['journey']}, learnt from its holdout "
            f"({uplift['training']['control_rows']} held out, {uplift['training']['treated_rows']} messaged): "
            + (
                f"messaging the top 30% of its {truth['leads']:,} leads by predicted uplift brings {share:.0%} of the "
                "extra applications messaging all of them would (30% at random: 30%), by the simulation's truth; "
                if share is not None
                else ""
            )
            + f"later window: {m['held_out']} held out (Qini {m['qini']}); leads by band — "
            + ", ".join(f"{b.replace('_', ' ')} {n:,}" for b, n in uplift["leads_by_band"].items()),
            highlight=False,
        )
