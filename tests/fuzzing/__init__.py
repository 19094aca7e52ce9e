"""Bad-input fuzzing of the public API with Hypothesis (see `oracle`)."""
