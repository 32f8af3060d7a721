"""``curate export`` through click: summary printed, errors as messages, --help examples."""

from __future__ import annotations

from click.testing import CliRunner

from curate.cli import main
from curate.cli.export_cmd import POLICY_CHOICES, export_format_choices
from curate.export import POLICIES, format_choices


def test_cli_exports_and_prints_summary(scenario, tmp_path):
    out = tmp_path / "clean.csv"
    args = ["export", str(scenario), "--format", "csv", "--policy", "auto", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:9] == [
        f"exported 7 of 9 faces -> {out} (format csv, policy auto, confidence 0.8)",
        "actions:    keep 2, accept_suggestion 3, soft 2, drop 2",
        "decided by: auto 9",
        "changes (given -> clean):",
        "       2  b -> c",
        "       1  a -> (dropped)",
        "       1  a -> b",
        "       1  b -> (dropped)",
        "unchanged labels: 4",
    ]
    assert out.is_file() and out.with_name("clean.csv.audit.json").is_file()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "clean.csv exists; pass --force to replace it" in again.output


def test_cli_help_and_choices():
    result = CliRunner().invoke(main, ["export", "--help"])
    assert result.exit_code == 0 and "Examples:\n    curate export runs/mini/scores.parquet" in result.output
    assert export_format_choices() == format_choices() and POLICY_CHOICES == POLICIES
