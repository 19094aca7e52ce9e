"""Optional matplotlib import with an install hint."""


def require_matplotlib():
    """`matplotlib.pyplot` on a non-interactive backend, or a clear ImportError."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "Plotting needs matplotlib: `pip install matplotlib` "
            "(or `pip install keras-robust[plot]`)."
        ) from error
    return plt
