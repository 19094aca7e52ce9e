"""Internal helpers shared by attacks, losses and models."""
