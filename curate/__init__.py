"""dmue-curate: find ambiguous and mislabeled faces with DMUE, review them in FiftyOne, export cleaned labels."""

__version__ = "0.1.0"
