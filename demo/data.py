"""A realistic, seeded sample of leads and lifecycle events for the demo and the benchmark."""

from __future__ import annotations

import math
import random
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from engine.domain.screening.features import CREDIT_FEATURES

ZH_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐"
ZH_GIVEN = [
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "磊",
    "洋",
    "勇",
    "艳",
    "杰",
    "军",
    "强",
    "丽",
    "涛",
    "明",
    "超",
    "秀英",
    "建国",
    "志强",
    "海燕",
    "晓明",
    "佳怡",
    "子涵",
    "浩然",
    "雨桐",
    "桂兰",
    "淑珍",
]
EN_FIRST = [
    "Alex",
    "Grace",
    "Daniel",
    "Emily",
    "Jason",
    "Linda",
    "Kevin",
    "Sophie",
    "Michael",
    "Helen",
    "David",
    "Rachel",
    "Tom",
    "Mary",
    "Peter",
    "Susan",
]
EN_LAST = ["Chen", "Wong", "Smith", "Lee", "Brown", "Liu", "Taylor", "Ng", "Wilson", "Zhao"]
CITIES = [
    ("Beijing", "Beijing"),
    ("Shanghai", "Shanghai"),
    ("Guangdong", "Shenzhen"),
    ("Guangdong", "Guangzhou"),
    ("Zhejiang", "Hangzhou"),
    ("Sichuan", "Chengdu"),
    ("Henan", "Zhengzhou"),
    ("Gansu", "Lanzhou"),
    ("Jiangsu", "Suzhou"),
]
INDUSTRIES = ["manufacturing", "retail", "catering", "logistics", "software", "construction"]
PARTNERS = {
    "partner_estate_agent": ["Lianjia Xicheng", "Centaline Pudong", "5i5j Nanshan"],
    "car_dealer": ["BYD Chaoyang 4S", "Geely Hangzhou Auto City", "Toyota Tianhe"],
}


@dataclass(frozen=True)
class DemoEvent:
    """A lifecycle row and the simulated moment it arrives."""

    at: datetime
    row: dict[str, Any]
    #: A response to marketing: the click on a message's link and what follows from it. It
    #: happens only if the lender reached the lead first (a message sent, an officer's call) …
    response: bool = False
    #: … unless the lead would have done it unprompted (never for the click itself).
    unprompted: bool = True


def _phone(rng: random.Random) -> str:
    return f"1{rng.choice('3589')}{rng.randint(0, 9)}{rng.randint(10_000_000, 99_999_999)}"


def _lead(rng: random.Random, n: int, start: datetime, days: int) -> dict[str, Any]:
    kind = rng.choices(["young", "sme", "senior", "general"], weights=[40, 22, 18, 20])[0]
    english = rng.random() < 0.18
    if english:
        name = f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"
    else:
        name = rng.choice(ZH_SURNAMES) + rng.choice(ZH_GIVEN)
    year = start.year
    region, city = rng.choice(CITIES)
    row: dict[str, Any] = {
        "name": name,
        "language": "en" if english else "zh-CN",
        "region": region,
        "city": city,
        "phone": _phone(rng) if rng.random() < 0.95 else "",
        "consent_sms": "yes" if rng.random() < 0.85 else "no",
    }
    row["email"] = (
        f"lead{n}@{rng.choice(['qq.com', '163.com', 'example.com', 'outlook.com'])}"
        if rng.random() < (0.9 if kind != "senior" else 0.45)
        else ""
    )
    row["consent_email"] = "yes" if row["email"] and rng.random() < 0.9 else "no"
    if kind == "young":
        row.update(
            birth_year=year - rng.randint(23, 36),
            employment_type=rng.choice(["salaried", "salaried", "freelance"]),
            monthly_income=rng.randrange(9000, 35000, 500),
            loan_type=rng.choice(["consumer", "consumer", "auto", "mortgage"]),
        )
        if row["employment_type"] == "salaried":
            row["employer_kind"] = rng.choice(["large_private", "state_owned", "small_private", "government"])
    elif kind == "sme":
        row.update(
            birth_year=year - rng.randint(30, 58),
            employment_type="business_owner",
            employer_kind="own_business",
            industry=rng.choice(INDUSTRIES),
            business_name=f"{city} {rng.choice(['Trading', 'Tech', 'Foods', 'Machinery'])} Co. {n}",
            business_years=rng.randint(1, 20),
            business_revenue=rng.randrange(500_000, 20_000_000, 100_000),
            monthly_income=rng.randrange(20000, 120000, 1000),
            loan_type="business",
        )
    elif kind == "senior":
        row.update(
            birth_year=year - rng.randint(60, 76),
            employment_type="retired",
            monthly_income=rng.randrange(3000, 12000, 500),
            loan_type=rng.choice(["renovation", "consumer"]),
        )
    else:
        row.update(
            birth_year=year - rng.randint(39, 58),
            employment_type="salaried",
            employer_kind=rng.choice(["government", "state_owned", "large_private", "small_private"]),
            monthly_income=rng.randrange(8000, 60000, 1000),
            loan_type=rng.choice(["mortgage", "auto", "renovation", "consumer"]),
        )
    row["monthly_debt"] = int(row["monthly_income"] * rng.uniform(0, 0.6))
    channel = {"mortgage": "partner_estate_agent", "auto": "car_dealer"}.get(row["loan_type"])
    if channel is None or rng.random() < 0.3:
        channel = rng.choices(["web_form", "offline_fair", "past_borrower", "loan_platform"], weights=[45, 20, 20, 15])[
            0
        ]
    if kind == "senior" and rng.random() < 0.5:
        channel = rng.choice(["offline_fair", "past_borrower"])
    row["source_channel"] = channel
    row["external_id"] = f"{channel[:3].upper()}-{n:06d}"
    if channel in PARTNERS:
        row["partner"] = rng.choice(PARTNERS[channel])
    if channel in ("web_form", "loan_platform"):
        row["utm_source"], row["utm_medium"] = rng.choice([("baidu", "cpc"), ("wechat", "social"), ("douyin", "video")])
        row["utm_campaign"] = "spring-2026"
    amounts = {
        "mortgage": (500_000, 3_000_000),
        "auto": (80_000, 400_000),
        "business": (200_000, 5_000_000),
        "consumer": (10_000, 200_000),
        "renovation": (50_000, 300_000),
    }
    lo, hi = amounts[row["loan_type"]]
    row["loan_amount"] = rng.randrange(lo, hi, 10_000)
    row["loan_term_months"] = rng.choice([12, 24, 36, 60] if row["loan_type"] != "mortgage" else [240, 360])
    captured = start + timedelta(days=rng.uniform(0, days), hours=0)
    row["captured_at"] = captured.isoformat()
    # Campaigns and fairs (their own generator, so the rows above stay as they were).
    extra = random.Random(n * 7919 + 1)
    if row.get("utm_campaign"):
        row["utm_campaign"] = extra.choice(CAMPAIGNS)
        row["campaign"] = row["utm_campaign"]
    if channel in FAIRS:
        row["event"] = extra.choice(FAIRS[channel])
    return row


#: Web campaigns (UTM campaign and campaign) and the fairs where leads were met.
CAMPAIGNS = ["spring-2026", "spring-2026", "first-home-2026"]
FAIRS = {"offline_fair": ["Shanghai Home Expo", "Shenzhen Auto Show", "Chengdu Finance Day"]}
#: The demo's marketing costs (CNY): what each partner, campaign, fair and platform cost a month.
MONTHLY_COSTS = [
    ("partner", "Lianjia Xicheng", 60_000),
    ("partner", "Centaline Pudong", 45_000),
    ("partner", "5i5j Nanshan", 40_000),
    ("partner", "BYD Chaoyang 4S", 30_000),
    ("partner", "Geely Hangzhou Auto City", 25_000),
    ("partner", "Toyota Tianhe", 25_000),
    ("utm_campaign", "spring-2026", 80_000),
    ("utm_campaign", "first-home-2026", 50_000),
    ("channel", "loan_platform", 35_000),
    ("utm_campaign", "retarget-2026", 15_000),
    ("event", "Shanghai Home Expo", 70_000),
    ("event", "Shenzhen Auto Show", 50_000),
    ("event", "Chengdu Finance Day", 20_000),
]


def add_touches(leads: list[dict[str, Any]], seed: int = 7, share: float = 0.12) -> int:
    """Some leads met at a fair or through a partner fill in the web form days later, after a
    retargeting ad: the same person again (a second touch). The rows join ``leads``; how many."""
    rng = random.Random(seed)
    again = []
    for i, row in enumerate(leads):
        if row["source_channel"] not in ("offline_fair", "partner_estate_agent", "car_dealer") or not row.get("phone"):
            continue
        if rng.random() >= share:
            continue
        later = datetime.fromisoformat(row["captured_at"]) + timedelta(days=rng.uniform(1, 6))
        copy = {k: v for k, v in row.items() if k not in ("partner", "event", "campaign", "external_id")}
        copy.update(source_channel="web_form", external_id=f"WEB-R{i:06d}", utm_source="wechat",
                    utm_medium="social", utm_campaign="retarget-2026", campaign="retarget-2026",
                    captured_at=later.isoformat())  # fmt: skip
        again.append(copy)
    leads += again
    return len(again)


def demo_costs(start: datetime, days: int) -> list[dict[str, Any]]:
    """The marketing costs file of the months leads were bought in (``days`` from ``start``), as
    a finance team would send it."""
    rows = []
    month = date(start.year, start.month, 1)
    last = (start + timedelta(days=days)).date()
    while month <= last:
        for kind, name, amount in MONTHLY_COSTS:
            rows.append({"kind": kind, "name": name, "period": month.strftime("%Y-%m"), "amount": amount,
                         "currency": "CNY", "note": "monthly fee"})  # fmt: skip
        month += timedelta(days=monthrange(month.year, month.month)[1])
    return rows


def _lifecycle(rng: random.Random, row: dict[str, Any], end: datetime) -> list[DemoEvent]:
    ref = {"source_channel": row["source_channel"], "external_id": row["external_id"]}
    t = datetime.fromisoformat(row["captured_at"])
    out: list[DemoEvent] = []
    response, unprompted = False, True

    def add(delay_days: float, **fields: Any) -> bool:
        nonlocal t
        t = t + timedelta(days=delay_days, hours=rng.uniform(0, 8))
        if t >= end:
            return False
        out.append(DemoEvent(t, {**ref, "at": t.isoformat(), **fields}, response, unprompted))
        return True

    if rng.random() < 0.04 and row.get("phone"):
        add(rng.uniform(0.5, 9), type="consent_withdrawn", channel="sms", reason="replied TD")
        return out
    # Who responds depends on where the lead came from and how stretched they are (what the
    # propensity model learns); who misses a repayment depends on capacity and stability.
    lift = _response_lift(row)
    clicked, unclicked = _apply_chances(lift)
    if rng.random() < 0.30 * lift:
        response, unprompted = True, False
        if not add(rng.uniform(0.5, 5), type="stage_changed", stage="engaged", reason="clicked the application link"):
            return out
        # What follows the click happens without it as often as an unclicked lead applies.
        unprompted = rng.random() < unclicked / clicked
    if rng.random() < (clicked if out else unclicked):
        app = f"APP-{row['external_id']}"
        if not add(
            rng.uniform(0.5, 8),
            type="application_submitted",
            application_id=app,
            loan_type=row["loan_type"],
            amount=row["loan_amount"],
        ):
            return out
        roll = rng.random()
        if roll < 0.62:
            approved = add(
                rng.uniform(1, 4), type="application_approved", application_id=app, amount=row["loan_amount"]
            )
            funded = (
                approved
                and rng.random() < 0.85
                and add(
                    rng.uniform(1, 6),
                    type="loan_funded",
                    application_id=app,
                    amount=row["loan_amount"],
                    term_months=row["loan_term_months"],
                )
            )
            if funded and rng.random() < bad_probability(row):
                add(rng.uniform(30, 40), type="repayment_missed", application_id=app, days_past_due=5)
        elif roll < 0.92:
            add(
                rng.uniform(1, 4),
                type="application_declined",
                application_id=app,
                reason=rng.choice(["DTI above policy", "insufficient credit history", "income not verified"]),
            )
    return out


def _response_lift(row: dict[str, Any]) -> float:
    return CHANNEL_LIFT.get(row["source_channel"], 1.0) * (0.6 if _dti(row) > 0.45 else 1.0)


def _apply_chances(lift: float) -> tuple[float, float]:
    """A lead's chance to apply after clicking a message's link, and without a click."""
    return min(0.9, 0.45 * lift), min(0.9, 0.08 * lift)


def true_uplift(row: dict[str, Any]) -> float:
    """What messaging really adds to this generated lead's chance to apply (the simulation's own
    truth, which an uplift model can only estimate): it clicks with chance 0.30 x lift, and a click
    raises its chance to apply from the unclicked to the clicked one; a lead held out never clicks."""
    lift = _response_lift(row)
    clicked, unclicked = _apply_chances(lift)
    return min(1.0, 0.30 * lift) * (clicked - unclicked)


CHANNEL_LIFT = {
    "past_borrower": 1.7,
    "partner_estate_agent": 1.4,
    "car_dealer": 1.4,
    "web_form": 1.0,
    "offline_fair": 0.9,
    "loan_platform": 0.7,
}


def _dti(row: dict[str, Any]) -> float:
    income = float(row.get("monthly_income") or 0)
    return float(row.get("monthly_debt") or 0) / income if income else 0.0


def bad_probability(row: dict[str, Any]) -> float:
    """The simulated chance a loan goes bad: debt load, income, stability and loan size drive it."""
    income = float(row.get("monthly_income") or 1)
    loan_to_income = float(row.get("loan_amount") or 0) / (12 * income)
    z = -4.4 + 3.2 * _dti(row) - 0.25 * math.log(income / 10000) + 0.35 * min(loan_to_income, 4)
    z += {"freelance": 0.7, "self_employed": 0.5, "retired": 0.2}.get(str(row.get("employment_type")), 0.0)
    z += {"government": -0.6, "state_owned": -0.4, "small_private": 0.3}.get(str(row.get("employer_kind")), 0.0)
    if row.get("business_years"):
        z -= 0.04 * min(int(row["business_years"]), 15)
    return 1 / (1 + math.exp(-z))


#: A loan id, its funding date, the credit pre-screen's characteristics, and the outcome.
BACK_BOOK_COLUMNS = ["loan_id", "funded_at", *CREDIT_FEATURES, "bad"]


def back_book(n: int, start: datetime, months: int = 24, seed: int = 7) -> list[dict[str, Any]]:
    """The lender's own loan history: ``n`` loans funded over ``months`` before ``start``, each
    with its outcome (bad = missed a repayment). The credit scorecard learns from it."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        row = _lead(rng, i, start - timedelta(days=30 * months), 30 * months - 90)
        income = float(row["monthly_income"])
        rows.append(
            {
                "loan_id": f"L-{i:06d}",
                "funded_at": row["captured_at"][:10],
                "employment_type": row.get("employment_type", ""),
                "employer_kind": row.get("employer_kind", ""),
                "monthly_income": row["monthly_income"],
                "dti": round(_dti(row), 4),
                "loan_type": row["loan_type"],
                "loan_to_income": round(float(row["loan_amount"]) / (12 * income), 4),
                "loan_term_months": row["loan_term_months"],
                "business_years": row.get("business_years", ""),
                "industry": row.get("industry", ""),
                "bad": int(rng.random() < bad_probability(row)),
            }
        )
    rows.sort(key=lambda r: r["funded_at"])
    return rows


def generate(
    n: int, start: datetime, capture_days: int, sim_days: int, seed: int = 2026
) -> tuple[list[dict[str, Any]], list[DemoEvent]]:
    """``n`` lead rows captured over ``capture_days`` and their lifecycle over ``sim_days``."""
    rng = random.Random(seed)
    end = start + timedelta(days=sim_days)
    leads = [_lead(rng, i, start, capture_days) for i in range(n)]
    events = [e for row in leads for e in _lifecycle(rng, row, end)]
    events.sort(key=lambda e: e.at)
    return leads, events


def bad_rows() -> list[dict[str, Any]]:
    """Rows a real partner file contains: each is refused with a clear reason."""
    return [
        {
            "source_channel": "car_dealer",
            "external_id": "BAD-1",
            "name": "张三",
            "phone": "12345",
            "email": "not-an-email",
        },
        {
            "source_channel": "web_form",
            "external_id": "BAD-2",
            "name": "李四",
            "phone": "13800138123",
            "loan_type": "yacht",
        },
        {"source_channel": "fax", "external_id": "BAD-3", "name": "Bob", "email": "bob@example.com"},
    ]


def add_referrals(
    leads: list[dict[str, Any]],
    events: list[DemoEvent],
    code_of: Callable[[dict[str, Any]], str],
    end: datetime,
    referrers: int = 30,
    seed: int = 11,
) -> int:
    """Customers funded early bring friends who quote their code (``code_of`` a lead row):
    most friends are genuine, a few share the referrer's device, and one referrer brings five
    friends in a day. The friends and their loans join ``leads`` and ``events``; how many friends."""
    rng = random.Random(seed)
    rows = {(r["source_channel"], r["external_id"]): r for r in leads}
    funded = sorted(
        (e for e in events if e.row["type"] == "loan_funded" and e.at < end - timedelta(days=25)), key=lambda e: e.at
    )
    chosen = [e for e in funded if rows[(e.row["source_channel"], e.row["external_id"])]["loan_type"] != "business"]
    friends: list[dict[str, Any]] = []
    for n, fund in enumerate(chosen[:referrers]):
        referrer = rows[(fund.row["source_channel"], fund.row["external_id"])]
        referrer["device_id"] = f"device-{referrer['external_id']}"
        many = 5 if n == 0 else rng.choice([1, 1, 2])
        day = fund.at + timedelta(days=rng.uniform(2, 10))
        for k in range(many):
            i = len(friends)
            friend = _lead(rng, 900_000 + i, day, 1)
            friend.update(
                source_channel="referral",
                external_id=f"REF-{i:05d}",
                loan_type="consumer",
                loan_amount=rng.randrange(30_000, 120_000, 10_000),
                referral_code=code_of(referrer),
                captured_at=(day + timedelta(hours=k if n == 0 else rng.uniform(0, 8))).isoformat(),
                device_id=referrer["device_id"] if n % 9 == 4 else f"device-friend-{i}",
            )
            friend.pop("partner", None)
            friends.append(friend)
            at = datetime.fromisoformat(friend["captured_at"])
            if rng.random() < 0.7:
                app = f"APP-{friend['external_id']}"
                ref = {"source_channel": "referral", "external_id": friend["external_id"]}
                for delay, kind in (
                    (1.5, "application_submitted"),
                    (3.0, "application_approved"),
                    (5.0, "loan_funded"),
                ):
                    when = at + timedelta(days=delay)
                    if when < end:
                        fields = {"application_id": app, "amount": friend["loan_amount"], "loan_type": "consumer"}
                        if kind == "loan_funded":
                            fields["term_months"] = 24
                        if kind == "application_approved":
                            fields.pop("loan_type")
                        events.append(DemoEvent(when, {**ref, "at": when.isoformat(), "type": kind, **fields}))
    leads.extend(friends)
    events.sort(key=lambda e: e.at)
    return len(friends)
