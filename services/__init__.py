"""Use-cases: catalogue look-ups, registration, prediction, audit. No web framework here."""
