"""The scikit-learn side of the catalogue: signatures, artifacts, prediction, metrics, demo."""
