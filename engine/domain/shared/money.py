"""Money: an amount in a currency, exact to the currency's minor unit (never a float).

Sums of one currency stay exact; shares of an amount (a cost spread over the channels whose
leads it bought, or over the days of a period that fall in a report's window) are whole minor
units that add up to the amount exactly: the largest-remainder method gives the leftover cents
to the shares whose exact value lost most in rounding (ties by order), so a report's rows always
sum to its total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any, TypeVar

from engine.domain.shared.errors import HuokeError

K = TypeVar("K")

#: Minor units per currency where they are not hundredths (ISO 4217 exponents).
_EXPONENT = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}


class CurrencyMismatchError(HuokeError):
    """Raised when amounts in two currencies are added or compared."""


def minor_exponent(currency: str) -> int:
    return _EXPONENT.get(currency.upper(), 2)


@dataclass(frozen=True)
class Money:
    """An amount exact to its currency's minor unit (CNY: the fen)."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        unit = Decimal(1).scaleb(-minor_exponent(self.currency))
        object.__setattr__(self, "amount", Decimal(self.amount).quantize(unit, rounding=ROUND_HALF_EVEN))
        object.__setattr__(self, "currency", self.currency.upper())

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    @property
    def minor_units(self) -> int:
        return int(self.amount.scaleb(minor_exponent(self.currency)))

    @classmethod
    def of_minor_units(cls, units: int, currency: str) -> Money:
        return cls(Decimal(units).scaleb(-minor_exponent(currency)), currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"{self.currency} and {other.currency} cannot be added or compared")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def prorate(self, part: int, whole: int) -> Money:
        """``part`` of ``whole`` (days of a period, say), rounded to the minor unit."""
        if whole <= 0:
            raise ValueError("a share of nothing")
        return Money(self.amount * Decimal(part) / Decimal(whole), self.currency)

    def allocate(self, weights: Mapping[K, int | Decimal]) -> dict[K, Money]:
        """Shares in proportion to ``weights`` (non-negative, not all zero), in whole minor units
        that add up to exactly this amount."""
        total = sum((Decimal(w) for w in weights.values()), Decimal(0))
        if not weights or total <= 0 or any(Decimal(w) < 0 for w in weights.values()):
            raise ValueError("allocation needs non-negative weights that are not all zero")
        units = self.minor_units
        exact = {k: Decimal(units) * Decimal(w) / total for k, w in weights.items()}
        floors = {k: int(v.to_integral_value(rounding=ROUND_FLOOR)) for k, v in exact.items()}
        left = units - sum(floors.values())
        order = sorted(weights, key=lambda k: -(exact[k] - floors[k]))  # stable: ties keep their order
        for k in order[:left] if left >= 0 else []:
            floors[k] += 1
        return {k: Money.of_minor_units(floors[k], self.currency) for k in weights}

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


#: The currency of amounts stored as bare text, before events carried ``Money``: the lender's
#: report currency (bootstrap sets it from ``HUOKE_CURRENCY``), which is what those figures
#: were always read as.
_unstated_currency = ["CNY"]


def assume_currency(currency: str) -> None:
    """Say which currency amounts stored without one are in (once, at start-up)."""
    _unstated_currency[0] = currency.upper()


def stored_amount(text: Any) -> Money | None:
    """An amount stored as bare text by an earlier version ("" or None: not stated)."""
    return money_of(text, _unstated_currency[0])


def amount_text(money: Money | None) -> str:
    """The amount as exact decimal text, "" when none was stated (a view's TEXT column)."""
    return "" if money is None else str(money.amount)


def money_of(amount: Any, currency: str) -> Money | None:
    """An amount given as text or a number, in ``currency`` ("" or None: not stated)."""
    if amount is None or str(amount).strip() == "":
        return None
    return Money(Decimal(str(amount).replace(",", "")), currency)
