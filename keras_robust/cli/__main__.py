"""`python -m keras_robust.cli ...` (what `--backend` re-runs)."""

import sys

from keras_robust.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
