"""The `keras-robust` command line: `train`, `evaluate` and `generate`.

    keras-robust train --method weat --dataset digits --out runs/demo
    keras-robust evaluate runs/demo/model.keras --dataset digits --attack autoattack
    keras-robust generate runs/demo/model.keras --dataset digits --out samples.png

Also runs as `python -m keras_robust.cli ...`; from Python,
`keras_robust.cli.main([...])` returns the exit status. See docs/cli.md.
"""

from keras_robust.cli.app import main

__all__ = ["main"]
