"""The (mean, std) pair returned by the subset-averaged metrics."""

from typing import NamedTuple


class MeanStd(NamedTuple):
    """A metric averaged over splits or subsets, with its spread.

    A plain tuple, so `mean, std = kr.metrics.inception_score(p)` works.

    Attributes:
        mean: the mean of the per-split (or per-subset) values.
        std: their standard deviation (population form, ddof=0, as in the
            reference implementations). 0.0 when there is a single split.
    """

    mean: float
    std: float
