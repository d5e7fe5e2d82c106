"""Small statistics shared by the reports: one definition of mean +- sample standard deviation."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1) of the values that are not None.

    Parameters
    ----------
    values : iterable of float or None
        None entries (a metric a run did not record) are skipped.

    Returns
    -------
    (float or None, float or None)
        ``(None, None)`` for no values; the standard deviation is None for a single value,
        since one seed says nothing about the spread.
    """
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, None
    if len(vals) < 2:
        return vals[0], None
    return statistics.fmean(vals), statistics.stdev(vals)
