"""Measuring touches: pure functions over plain lists. No database, no clock: the period and
``now`` are parameters, so the same numbers come out in tests, reports and dashboards.

How the numbers are counted:

- **Cohorts.** A period ``[since, until)`` selects touches and holdout decisions by decision
  time. What followed them (redemptions, orders, refunds, unsubscribes) is counted up to ``now``,
  even after ``until``: a coupon issued on the last day of the period still gets its redemption.
- **Attributed** revenue is the total of paid orders that redeemed the touch's coupon; *net*
  takes refunds off and counts a cancelled order as nothing. Discount cost skips cancelled
  orders. Money is summed in one currency (the shop's most common); other orders are counted
  in ``other_currency_orders`` and left out of the sums.
- **Influenced**: customers emailed by a touch without a coupon who placed a paid order within
  the window after it. It is a correlation, not an effect; holdout lift is the effect.
- **Holdout lift** compares, per rule, customers touched with customers held out, each counted
  once at their first decision in the period, as assigned (a touch whose email then bounced
  still counts as touched). Only decisions whose window closed by ``now`` take part. Converted =
  any paid, uncancelled order within the window after the decision. The lift is the difference
  of the two conversion rates with a Wald interval (normal approximation for a difference of
  two independent proportions, unpooled standard error). Incremental revenue = (net revenue
  per touched - per held-out customer within the window) x touched, with a Welch-style normal
  interval. ROI = (incremental revenue - discount cost - send cost) / (discount cost + send cost).
- **Inconclusive**, never hidden: fewer than ``min_group`` customers in a group, fewer than 5
  conversions or non-conversions in a group (the normal approximation does not hold), or an
  interval that spans 0.
- **A/B variants** (the holdout is drawn independently): redemption and conversion compared
  with a two-proportion z-test (pooled), revenue per customer with a Welch z-test; the leader
  must beat every other variant at the Bonferroni-corrected level, with enough data in each
  group, else "no winner yet". ROI per variant is shown against the holdout, not tested.
"""
from plugin.analytics.funnel import store_kpis, week_of, weekly_funnel
from plugin.analytics.inputs import (
                                     Attribution,
                                     Holdout,
                                     Inputs,
                                     OrderIndex,
                                     PaidOrder,
                                     Settings,
                                     Touch,
                                     Unsubscribe,
                                     main_currency,
)
from plugin.analytics.lift import holdout_lift
from plugin.analytics.report import build_report
from plugin.analytics.results import (
                                     AB_METHOD,
                                     LIFT_METHOD,
                                     FunnelWeek,
                                     Interval,
                                     Lift,
                                     MetricComparison,
                                     Report,
                                     RuleSummary,
                                     StoreKpis,
                                     VariantComparison,
                                     VariantStats,
                                     money,
                                     plain,
)
from plugin.analytics.statistics import difference_interval, mean_difference, two_proportion_z_test
from plugin.analytics.variants import compare_variants

__all__ = ["Touch", "Holdout", "PaidOrder", "Attribution", "Unsubscribe", "Inputs", "Settings", "Report",
           "RuleSummary", "Lift", "VariantComparison", "VariantStats", "MetricComparison", "FunnelWeek", "StoreKpis",
           "Interval", "OrderIndex", "build_report", "holdout_lift", "compare_variants", "store_kpis", "weekly_funnel",
           "difference_interval", "two_proportion_z_test", "mean_difference", "plain", "week_of", "LIFT_METHOD", "AB_METHOD",
           "main_currency", "money"]
