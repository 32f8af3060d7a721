"""Plain-text summaries of a scores file for the terminal."""

from __future__ import annotations

from pathlib import Path

from curate.records import read_scores


def top_flagged(scores_path: str | Path, n: int = 10) -> str:
    """The ``n`` most likely mislabeled and the ``n`` most ambiguous faces, as two small tables."""
    df = read_scores(
        scores_path,
        columns=[
            "sample_id",
            "given_label",
            "suggested_label",
            "mislabel_score",
            "ambiguity_score",
            "verdict",
            "reasons",
        ],
    )
    classes = df.attrs["classes"]
    lines = []
    for verdict, key in (("likely_mislabeled", "mislabel_score"), ("ambiguous", "ambiguity_score")):
        sub = df[df["verdict"] == verdict].nlargest(n, key)
        lines.append(f"\ntop {len(sub)} {verdict} (of {int((df['verdict'] == verdict).sum())}), by {key}:")
        lines.append(f"  {'sample_id':<40} {'given':>9} -> {'suggested':<9} {key:>15}  reasons")
        for row in sub.itertuples():
            lines.append(
                f"  {str(row.sample_id)[-40:]:<40} {classes[row.given_label]:>9} -> "
                f"{classes[row.suggested_label]:<9} {getattr(row, key):>15.3f}  {row.reasons}"
            )
    return "\n".join(lines)
