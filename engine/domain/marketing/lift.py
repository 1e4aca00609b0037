"""Lift of one arm of a split over another: the difference in conversion with its 95% confidence
interval, and a verdict in plain words (significant, or how many more leads it needs).

Normal approximation for two independent proportions: the absolute lift's interval is Wald's,
the relative lift's is Katz's (log of the risk ratio); the leads needed per arm are those that
would detect the difference seen with 80% power at the 5% level (two-sided).

That interval is right only when read once, at a size fixed beforehand; marketers read the
report every day, and stopping the first day it excludes zero makes a false winner several
times likelier than 5%. Beside it, an **always-valid** result that stays correct however often
it is read (Johari, Pekelis and Walsh, "Always valid inference", 2017; the mixture sequential
probability ratio test with a normal mixing distribution over the lift, on the normal
approximation of the difference): a p-value and a 95% confidence sequence for the lift, and a
verdict, "stop: B wins", "stop: B loses" or "keep going", that a marketer may act on the first
day it says stop. The mixing scale ``MIXING_SD`` (3 points of conversion) only decides how
quickly lifts of about that size are found; the guarantee holds for any.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

Z95 = NormalDist().inv_cdf(0.975)
Z_POWER80 = NormalDist().inv_cdf(0.80)
#: The spread of lifts the always-valid test is tuned to find (a fraction: 0.03 = 3 points).
MIXING_SD = 0.03
#: The always-valid test's level: a false "stop" at most this often, however often it is read.
ALPHA = 0.05


@dataclass(frozen=True)
class Lift:
    control_leads: int
    control_converted: int
    arm_leads: int
    arm_converted: int

    @property
    def control_rate(self) -> float:
        return self.control_converted / self.control_leads if self.control_leads else 0.0

    @property
    def arm_rate(self) -> float:
        return self.arm_converted / self.arm_leads if self.arm_leads else 0.0

    @property
    def absolute(self) -> float:
        """Percentage points (as a fraction): arm rate − control rate."""
        return self.arm_rate - self.control_rate

    @property
    def absolute_ci(self) -> tuple[float, float] | None:
        if not self.control_leads or not self.arm_leads:
            return None
        p1, p2 = self.control_rate, self.arm_rate
        se = math.sqrt(p1 * (1 - p1) / self.control_leads + p2 * (1 - p2) / self.arm_leads)
        if se == 0:  # every lead of both arms converted, or none did: no interval to speak of
            return None
        return (self.absolute - Z95 * se, self.absolute + Z95 * se)

    @property
    def relative(self) -> float | None:
        """Arm rate / control rate − 1; None when the control converted nobody."""
        return self.arm_rate / self.control_rate - 1 if self.control_rate else None

    @property
    def relative_ci(self) -> tuple[float, float] | None:
        if not self.control_converted or not self.arm_converted:
            return None
        log_rr = math.log(self.arm_rate / self.control_rate)
        se = math.sqrt(
            1 / self.arm_converted - 1 / self.arm_leads + 1 / self.control_converted - 1 / self.control_leads
        )
        return (math.exp(log_rr - Z95 * se) - 1, math.exp(log_rr + Z95 * se) - 1)

    @property
    def significant(self) -> bool:
        """The 95% interval of the absolute lift excludes zero (and it is not degenerate)."""
        ci = self.absolute_ci
        return ci is not None and (ci[0] > 0 or ci[1] < 0)

    @property
    def leads_needed_per_arm(self) -> int | None:
        """Leads per arm to tell the difference seen from none (80% power, 5% level); None when
        no difference is seen at all."""
        if self.absolute == 0:
            return None
        p1, p2 = self.control_rate, self.arm_rate
        variance = p1 * (1 - p1) + p2 * (1 - p2)
        if variance == 0:
            return None
        return math.ceil((Z95 + Z_POWER80) ** 2 * variance / self.absolute**2)

    @property
    def _variance(self) -> float | None:
        """The variance of the absolute lift (None without leads in both arms, or when it is 0)."""
        if not self.control_leads or not self.arm_leads:
            return None
        p1, p2 = self.control_rate, self.arm_rate
        v = p1 * (1 - p1) / self.control_leads + p2 * (1 - p2) / self.arm_leads
        return v or None

    @property
    def likelihood_ratio(self) -> float:
        """The mixture likelihood ratio of "the arms differ" against "they do not" (1 without
        evidence); "stop" when it reaches 1/ALPHA, by Ville's inequality at most ALPHA of the time
        when they do not differ, at whatever look."""
        v = self._variance
        if v is None:
            return 1.0
        tau2 = MIXING_SD**2
        exponent = self.absolute**2 * tau2 / (2 * v * (v + tau2))
        return math.sqrt(v / (v + tau2)) * math.exp(min(exponent, 700.0))

    @property
    def always_valid_p(self) -> float:
        """The always-valid p-value: min(1, 1 / likelihood ratio)."""
        return min(1.0, 1.0 / self.likelihood_ratio)

    @property
    def confidence_sequence(self) -> tuple[float, float] | None:
        """The lifts not rejected at level ALPHA at this look: a 95% interval that holds at every
        look at once (wider than the fixed-horizon one)."""
        v = self._variance
        if v is None:
            return None
        tau2 = MIXING_SD**2
        half = math.sqrt(2 * v * (v + tau2) / tau2 * (math.log(1 / ALPHA) + 0.5 * math.log((v + tau2) / v)))
        return (self.absolute - half, self.absolute + half)

    def sequential_verdict(self, arm: str) -> str:
        """What to do now, read as often as one likes: stop (a winner or a loser) or keep going."""
        if self.likelihood_ratio < 1 / ALPHA:
            return "keep going"
        return f"stop: {arm} wins" if self.absolute > 0 else f"stop: {arm} loses"

    def verdict(self, arm: str, control: str) -> str:
        if not self.control_leads or not self.arm_leads:
            return f"no leads yet in {control if not self.control_leads else arm}"
        if self.significant:
            better = "better" if self.absolute > 0 else "worse"
            return f"significant: {arm} converts {better} than {control} by {abs(self.absolute) * 100:.1f} points"
        needed = self.leads_needed_per_arm
        if needed is None:
            return "no difference seen yet: keep it running"
        more = max(needed - min(self.control_leads, self.arm_leads), 1)
        return f"not significant yet: about {more:,} more leads per arm needed"

    def as_dict(self, arm: str, control: str) -> dict[str, Any]:
        def rounded(pair: tuple[float, float] | None) -> list[float] | None:
            return None if pair is None else [round(pair[0], 4), round(pair[1], 4)]

        return {
            "arm": arm,
            "control": control,
            "arm_leads": self.arm_leads,
            "arm_converted": self.arm_converted,
            # An arm with no leads has no rate (not 0%), and there is no lift to speak of.
            "arm_rate": round(self.arm_rate, 4) if self.arm_leads else None,
            "control_leads": self.control_leads,
            "control_converted": self.control_converted,
            "control_rate": round(self.control_rate, 4) if self.control_leads else None,
            "absolute_lift": round(self.absolute, 4) if self.arm_leads and self.control_leads else None,
            "absolute_ci95": rounded(self.absolute_ci),
            "relative_lift": None if self.relative is None else round(self.relative, 4),
            "relative_ci95": rounded(self.relative_ci),
            "significant": self.significant,
            "leads_needed_per_arm": self.leads_needed_per_arm,
            "verdict": self.verdict(arm, control),
            # Valid however often it is read (the fixed-horizon figures above are not).
            "always_valid": {
                "p_value": round(self.always_valid_p, 4),
                "ci95": rounded(self.confidence_sequence),
                "verdict": self.sequential_verdict(arm),
            },
        }
