"""Learning-rate schedules of the robust-training references."""

from keras_robust.schedules.one_cycle import OneCycle

__all__ = ["OneCycle"]
