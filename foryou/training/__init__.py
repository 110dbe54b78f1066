"""Training: one trainer per model (the registry they write to is `foryou.registry`)."""
