"""Currencies: converting summed amounts (deals, finance lines) to one reporting currency,
never silently."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Label, func, select
from sqlalchemy.orm import Session

from okr_targets.models import Deal, FxRate
from transforms.metric import MetricError
from transforms.sql import exact_sum, from_units, live

CONFIG_SOURCE = "config"
"""Rates from the OKR file's ``money:`` section are mirrored under this source name."""


class Converter:
    """Converts amounts to a reporting currency, never silently.

    A pair of rates is taken from one table, so both share a base: first the OKR file's
    ``money.rates``, then the deal's own source (its dated rate for the deal's close date,
    else its static rate). A deal its source already converted (HubSpot's
    ``amount_in_home_currency``) uses that amount when the target is its home currency.
    No rate at all is a MetricError naming the currency, never a zero.
    """

    def __init__(self, session: Session) -> None:
        self.static: dict[tuple[str, str], Decimal] = {}
        self.dated: dict[tuple[str, str], list[tuple[date, date | None, Decimal]]] = {}
        self.corporate: dict[str, str] = {}
        for rate in session.scalars(select(FxRate).where(live(FxRate))):
            key = (rate.source, rate.currency)
            if rate.valid_from is None:
                self.static[key] = rate.rate
            else:
                self.dated.setdefault(key, []).append((rate.valid_from, rate.valid_to, rate.rate))
            if rate.is_corporate:
                self.corporate[rate.source] = rate.currency
                self.static.setdefault(key, Decimal(1))

    def target_currency(self, sources: Iterable[str], wanted: str | None) -> str | None:
        """The wanted currency, else the OKR file's, else the sources' corporate one."""
        if wanted:
            return wanted.upper()
        if CONFIG_SOURCE in self.corporate:
            return self.corporate[CONFIG_SOURCE]
        names = set(sources) or set(self.corporate)
        corporate = {self.corporate[s] for s in names if s in self.corporate}
        if len(corporate) > 1:
            raise MetricError(
                f"sources have different corporate currencies {sorted(corporate)}; "
                "set `money.currency` in the OKR file or the metric's `currency` parameter"
            )
        return corporate.pop() if corporate else None

    def _rate(self, source: str, currency: str, on: date | None) -> Decimal | None:
        if on is not None:
            for start, end, rate in self.dated.get((source, currency), ()):
                if start <= on and (end is None or on < end):
                    return rate
        return self.static.get((source, currency))

    def known(self, source: str, currency: str) -> bool:
        return any(
            (table, currency) in self.static or (table, currency) in self.dated
            for table in (CONFIG_SOURCE, source)
        )

    def convert(
        self,
        amount: Decimal,
        currency: str,
        source: str,
        target: str | None,
        on: date | None = None,
        amount_home: Decimal | None = None,
        home_currency: str | None = None,
        what: str = "deals",
    ) -> Decimal:
        if target is None or currency == target:
            return amount
        for table in (CONFIG_SOURCE, source):
            have, want = self._rate(table, currency, on), self._rate(table, target, on)
            if have is not None and want is not None:
                return amount / have * want
        if amount_home is not None and home_currency == target:
            return amount_home
        raise MetricError(f"no exchange rate from {currency} to {target} for {source} {what}")


def unconvertible_currencies(session: Session) -> list[str]:
    """Validation findings: live deal currencies that no rate can convert to the target."""
    converter = Converter(session)
    findings = []
    groups = session.execute(
        select(Deal.source, Deal.currency, func.count(), func.count(Deal.amount_home))
        .where(live(Deal), Deal.amount.is_not(None))
        .group_by(Deal.source, Deal.currency)
        .order_by(Deal.source, Deal.currency)
    ).all()
    for source, currency, deals, converted_at_source in groups:
        target = converter.target_currency([source], None)
        if target is None or currency == target or converted_at_source == deals:
            continue
        if not (converter.known(source, currency) and converter.known(source, target)):
            findings.append(
                f"{deals} {source} deal(s) in {currency} have no exchange rate to {target}; "
                "money key results that include them fail instead of counting them as zero "
                "(add the rate under `money.rates` in the OKR file)"
            )
    return findings


def summed_amounts() -> tuple[Label[Any], ...]:
    """Per group of won deals: the exact sum of amounts, the deals, and the sum and count
    of the amounts the source converted itself (``amount_home``)."""
    return (
        exact_sum(Deal.amount).label("amount"),
        func.count().label("deals"),
        exact_sum(Deal.amount_home).label("home"),
        func.count(Deal.amount_home).label("converted"),
    )


def converted_sum(converter: Converter, group: Any, target: str | None) -> Decimal:
    """One group's sum (a row with the columns of :func:`summed_amounts` and the deals'
    source, currency, home currency and close date) in ``target``; the source's own
    conversion counts only when every deal of the group has one."""
    amount_home = (
        from_units(group.home, Deal.amount_home) if group.converted == group.deals else None
    )
    return converter.convert(
        cast(Decimal, from_units(group.amount, Deal.amount)),
        group.currency,
        group.source,
        target,
        group.close_on,
        amount_home,
        group.home_currency,
    )
