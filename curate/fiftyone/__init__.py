"""FiftyOne side of dmue-curate: load scores into a dataset (:func:`load_scores`), the faiss
similarity backend (:mod:`curate.fiftyone.faiss_backend`, registered as ``"faiss"`` on import) and the
curator decisions (:mod:`curate.fiftyone.review`)."""

from curate.fiftyone.load import (
    ISSUE_VIEWS,
    QUEUES,
    SIMILARITY_KEY,
    VERDICT_TAGS,
    ScoresFileError,
    issue_views,
    load_scores,
    loaded_from,
)

__all__ = ["ISSUE_VIEWS", "QUEUES", "SIMILARITY_KEY", "VERDICT_TAGS", "ScoresFileError", "issue_views", "load_scores",
           "loaded_from"]  # fmt: skip
