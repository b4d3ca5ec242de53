"""How AWS bills each way of renting, as cash flows by month (pure numpy, vectorised over
Monte Carlo samples: arrays are ``(samples, months)``).

A flow array has one column per month boundary: column ``m`` is paid at the start of month ``m``
(upfront fees, Capacity Blocks, hardware), column ``m + 1`` at its end (hourly charges). Columns
past the horizon hold what is still owed for commitments that cannot be cancelled.

- **on-demand** follows the load: instance-hours = 730 x (mean load / (replica rate x headroom)
  + spares) / replicas per instance: it scales down at night, the spare stays up.
- **Reserved Instances and Savings Plans** are bought as the need rises, one term each, and
  cost every hour of it, used or not: ``upfront`` when the term starts, ``hourly x 730`` every
  month of the term, past the horizon too; a term that ends while still needed is renewed.
- **Capacity Blocks** are prepaid whole days: 1-14 days in 1-day steps, then 7-day steps up to
  182 days (:func:`block_days`); a serving load holds them around the clock, so the horizon is
  covered by back-to-back 182-day blocks sized for the busiest month each covers.
- **Spot** never carries serving (reclaimed at two minutes' notice); it may carry checkpointed
  training with ``interruption_overhead`` more hours (work redone since the last checkpoint).
- **Training campaigns** (GPU-hours a month on one shape) run in the idle hours of capacity held
  around the clock (owned, commitments, blocks) when they fit; otherwise, and on on-demand, they
  pay the cheapest of on-demand, a Capacity Block of whole days, or spot with the overhead.
- **Cloud extras**: storage (GB-month), egress (GB), and AWS Business Support on the month's
  bill: 10% of the first $10k, 7% to $80k, 5% to $250k, 3% above, at least $100.
"""

from __future__ import annotations

import numpy as np

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = 365.0 / 12
BLOCK_MAX_DAYS = 182
TAIL_MONTHS = 36  # the longest term: what a commitment can still owe after the horizon
SUPPORT_TIERS = ((10_000.0, 0.10), (80_000.0, 0.07), (250_000.0, 0.05), (np.inf, 0.03))
SUPPORT_MIN = 100.0


def block_days(days: np.ndarray | float) -> np.ndarray:
    """Days paid for Capacity Blocks that cover ``days`` of use: 182-day blocks, then one more
    block of the rest: as is up to 14 days, rounded up to 7-day steps above."""
    days = np.ceil(np.asarray(days, float) - 1e-9)
    full, rest = np.divmod(days, BLOCK_MAX_DAYS)
    return full * BLOCK_MAX_DAYS + np.where(rest <= 14, rest, np.ceil(rest / 7) * 7)


def zeros(samples: int, months: int) -> np.ndarray:
    return np.zeros((samples, months + TAIL_MONTHS + 1))


def hourly(instance_hours: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Per hour used: each month's instance-hours x rate, paid at the month's end."""
    s, m = instance_hours.shape
    out = zeros(s, m)
    out[:, 1 : m + 1] = instance_hours * np.asarray(rate, float)[:, None]
    return out


def commitment(
    needed: np.ndarray, hourly_usd: np.ndarray, upfront_usd: np.ndarray, years: int
) -> np.ndarray:
    """A commitment per instance bought whenever the need exceeds the terms still running;
    every hour of every term paid (past the horizon too)."""
    s, months = needed.shape
    term = 12 * years
    bought = np.zeros((s, months))
    for m in range(months):
        active = bought[:, max(0, m - term + 1) : m + 1].sum(axis=1)
        bought[:, m] = np.maximum(needed[:, m] - active, 0)
    out = zeros(s, months)
    out[:, :months] += bought * np.asarray(upfront_usd, float)[:, None]
    running = np.cumsum(np.pad(bought, ((0, 0), (0, term))), axis=1)
    running[:, term:] -= np.cumsum(bought, axis=1)[:, : running.shape[1] - term]
    monthly = np.asarray(hourly_usd, float)[:, None] * HOURS_PER_MONTH
    out[:, 1 : months + term + 1] += running[:, : months + term] * monthly
    return out


def capacity_blocks(needed: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Back-to-back blocks over the horizon, each prepaid at its start for the most instances
    any month it covers needs, every hour of every day."""
    s, months = needed.shape
    out = zeros(s, months)
    horizon = round(months * DAYS_PER_MONTH)
    for start in range(0, horizon, BLOCK_MAX_DAYS):
        end = min(start + BLOCK_MAX_DAYS, horizon)
        first, last = int(start // DAYS_PER_MONTH), int(np.ceil(end / DAYS_PER_MONTH))
        count = needed[:, first : max(last, first + 1)].max(axis=1)
        paid = block_days(end - start)
        out[:, first] += count * paid * 24 * np.asarray(rate, float)
    return out


def training_cost(
    gpu_hours: np.ndarray,
    gpus_per_instance: int,
    on_demand: float,
    block: float | None,
    spot: float | None,
    overhead_pct: np.ndarray,
) -> dict[str, np.ndarray]:
    """A month's campaign on whole instances, at most a week long: cost per option."""
    gpu_hours = np.asarray(gpu_hours, float)
    instances = np.maximum(np.ceil(gpu_hours / (gpus_per_instance * 24 * 7) - 1e-9), 1)
    hours = gpu_hours / (instances * gpus_per_instance)
    out = {"on-demand": instances * hours * on_demand}
    if block is not None:
        out["Capacity Block"] = instances * block_days(hours / 24) * 24 * block
    if spot is not None:
        out["spot"] = instances * hours * (1 + np.asarray(overhead_pct) / 100) * spot
    return out


def support(bill: np.ndarray) -> np.ndarray:
    """AWS Business Support on each month's bill (tiered, at least $100 a month)."""
    out, low = np.zeros_like(bill), 0.0
    for high, pct in SUPPORT_TIERS:
        out += np.clip(bill - low, 0, high - low) * pct
        low = high
    return np.where(bill > 0, np.maximum(out, SUPPORT_MIN), 0.0)


def npv(flows: np.ndarray, rate_pct: np.ndarray) -> np.ndarray:
    """Present value of monthly flows at an annual discount rate (column m at m/12 years)."""
    years = np.arange(flows.shape[1]) / 12.0
    factor = (1 + np.asarray(rate_pct, float)[:, None] / 100) ** -years
    return (flows * factor).sum(axis=1)
