"""Whether the code being run (or traced) is an attack's forward pass.

Attacks enter `attack_phase()` around their whole computation, so a layer can
behave differently for the attacker than for the weight update, as in the
Smooth Adversarial Training ablation. The flag is read when a function is
traced, so it also holds inside compiled steps, where the attack and the
update are traced as separate regions of the same function.
"""

import contextlib
import threading

_state = threading.local()


def in_attack_phase():
    """True inside `attack_phase()` (on this thread)."""
    return getattr(_state, "depth", 0) > 0


@contextlib.contextmanager
def attack_phase():
    """Marks the enclosed forward passes as an attacker's.

    Example:
    >>> with kr.layers.attack_phase():
    ...     x_adv = my_custom_attack(model, x, y)
    """
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
