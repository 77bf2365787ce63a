"""The simulator's configuration: one frozen pydantic model, every knob documented."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hanzo.ml.schemas.events import MAX_EVENT_TIME_MS, MIN_EVENT_TIME_MS

logger = logging.getLogger(__name__)

#: 2026-01-01T00:00:00Z in epoch milliseconds: the default start of simulated event time.
DEFAULT_START_TIME_MS = 1_767_225_600_000

DayRange = tuple[float, float]


class DriftSpec(BaseModel):
    """A change of the simulated world from one order on (a hook for drift experiments).

    ``feature_shift`` moves the inputs but not the rule: prices rise by ``50 % x magnitude`` and more
    legitimate orders ship abroad. ``concept_change`` moves the rule: fraudsters stop using risky payment
    methods and foreign shipping addresses (with probability ``min(1, magnitude)``) and buy gift cards
    through the marketplace instead, so a model trained before the change scores them wrongly.

    Examples
    --------
    >>> DriftSpec(at_order=5000, kind="concept_change").magnitude
    1.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    at_order: int = Field(ge=0, description="index (0-based) of the first order generated after the change")
    kind: Literal["feature_shift", "concept_change"]
    magnitude: float = Field(1.0, gt=0, le=10, description="strength of the change")


class BGNBD(BaseModel):
    """Churn by the BG/NBD customer-base model, with drop-out raised by support tickets and refunds.

    The beta-geometric/negative binomial distribution model of Fader, Hardie & Lee (2005), "'Counting
    Your Customers' the Easy Way: An Alternative to the Pareto/NBD Model", *Marketing Science* 24(2),
    275-284 (doi:10.1287/mksc.1040.0098):

    - each customer has a purchase rate ``lambda ~ Gamma(r, alpha)`` and, while alive, orders as a Poisson
      process of that rate (heterogeneous rates: the order counts of a cohort are over-dispersed, negative
      binomial rather than Poisson);
    - after each of their (legitimate) orders the customer drops out for good with probability
      ``p ~ Beta(a, b)``, drawn once per customer.

    The simulator's one change to the paper: complaints raise the drop-out chance. At an order, with ``T``
    support tickets and ``R`` refunds on the account so far (event time at or before the order),
    ``p' = 1 - (1 - p) * exp(-(ticket_uplift * T + refund_uplift * R))``; with no complaint ``p' = p``.

    The scale ``alpha`` is not a knob: it is set so that the customers of the start place the legitimate
    orders of ``orders_per_day`` (minus the first orders of signups). Afterwards every customer keeps their
    rate, so the order rate follows the living customer base: it falls as customers drop out and rises with
    signups. Each customer's rate is ``lambda`` times their segment's relative ``rate`` (a mixture of
    BG/NBD populations, one per segment). The defaults of ``r``, ``a`` and ``b`` are the paper's estimates
    on the CDNOW cohort (r = 0.243, alpha = 4.414 per week, a = 0.793, b = 2.426: strong rate
    heterogeneity, a mean drop-out chance of 0.25 per order).

    Examples
    --------
    >>> m = BGNBD()
    >>> m.r, round(m.mean_dropout, 3)
    (0.243, 0.246)
    >>> BGNBD(a=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for BGNBD
    ...
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    r: float = Field(0.243, gt=0, le=1000, description="shape of the gamma of purchase rates")
    a: float = Field(0.793, gt=0, le=1000, description="beta of drop-out chances: first shape")
    b: float = Field(2.426, gt=0, le=1000, description="beta of drop-out chances: second shape")
    ticket_uplift: float = Field(0.5, ge=0, le=20, description="drop-out hazard added per support ticket")
    refund_uplift: float = Field(1.0, ge=0, le=20, description="drop-out hazard added per refund")

    @property
    def mean_dropout(self) -> float:
        """The mean drop-out chance per order without complaints, ``a / (a + b)``."""
        return self.a / (self.a + self.b)


class SimulatorConfig(BaseModel):
    """Everything that shapes a simulated commerce stream; the same config and seed give the same stream.

    Parameters
    ----------
    seed
        Seed of the random generator (``random.Random``); runs with the same config are identical.
    orders
        Number of orders to generate. The stream goes on after the last order until every pending label,
        chargeback and follow-up event is out.
    customers
        Customers who hold an account when the simulation starts (created days to years before).
    products
        Products in the catalogue (at least one per category).
    orders_per_day
        Rate of orders in event time (Poisson arrivals, fraud bursts included); with ``churn``, the rate at
        the start (the legitimate order rate then follows the living customers).
    start_time_ms
        Event time of the start, epoch milliseconds (default 2026-01-01T00:00:00Z). The browsing and the
        fake-account signups that lead up to the first orders may come up to 6 hours earlier.
    fraud_rate
        Target share of fraudulent orders (the realised share is close, not exact).
    browse_events_per_order
        Mean number of browsing events (page_view, search, add_to_cart, checkout_started) before an order;
        0 turns browsing off.
    signups_per_day
        New legitimate customers per day of event time (fraudsters' fake accounts come on top).
    chargeback_delay_days
        ``(low, high)``: a fraudulent order's chargeback and its ``fraud=1`` label arrive uniformly between
        ``low`` and ``high`` days after the order.
    settle_delay_days
        ``(low, high)``: a legitimate order settles (label ``fraud=0``) uniformly between ``low`` and
        ``high`` days after the order.
    currency
        The one shop currency of every order (prices and totals are comparable across countries).
    id_prefix
        Prefix of every generated id; default ``s<seed>`` so runs with different seeds never share ids.
    churn
        Churn by the BG/NBD model (see :class:`BGNBD`); None (the default): nobody churns and every
        customer's share of the orders is fixed. Ground truth is :meth:`Simulator.churned_at`.
    drift
        Hook for drift experiments: changes applied from a chosen order index on (see :class:`DriftSpec`).

    Examples
    --------
    >>> cfg = SimulatorConfig(seed=7, orders=100)
    >>> cfg.customers, cfg.chargeback_delay_days, cfg.prefix
    (2000, (2.0, 20.0), 's7')
    >>> SimulatorConfig(seed=1, orders=1, settle_delay_days=(5, 1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for SimulatorConfig
    ...
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0)
    orders: int = Field(10_000, ge=0, le=100_000_000)
    customers: int = Field(2000, ge=1, le=10_000_000)
    products: int = Field(500, ge=10, le=1_000_000)
    orders_per_day: float = Field(2000.0, gt=0, le=1e9)
    start_time_ms: int = Field(DEFAULT_START_TIME_MS, ge=MIN_EVENT_TIME_MS + 10 * 365 * 86_400_000)
    fraud_rate: float = Field(0.02, ge=0, le=0.5)
    browse_events_per_order: float = Field(2.0, ge=0, le=20)
    signups_per_day: float = Field(20.0, ge=0)
    chargeback_delay_days: DayRange = (2.0, 20.0)
    settle_delay_days: DayRange = (3.0, 10.0)
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    id_prefix: str | None = Field(None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_]+$")
    churn: BGNBD | None = None
    drift: tuple[DriftSpec, ...] = ()

    @field_validator("chargeback_delay_days", "settle_delay_days")
    @classmethod
    def _check_range(cls, value: DayRange) -> DayRange:
        low, high = value
        if not 0 <= low <= high <= 365:
            msg = f"expected 0 <= low <= high <= 365 days, got {value}"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _check_horizon(self) -> SimulatorConfig:
        days = self.orders / self.orders_per_day + max(
            self.chargeback_delay_days[1], self.settle_delay_days[1]
        )
        if self.start_time_ms + days * 2 * 86_400_000 >= MAX_EVENT_TIME_MS:
            msg = f"the stream would run past year 2100 ({days:.0f} days from start); raise orders_per_day"
            raise ValueError(msg)
        return self

    @property
    def prefix(self) -> str:
        """The prefix of every generated id."""
        return self.id_prefix or f"s{self.seed}"
