"""``curate --version`` and click's shell completion of the installed ``curate`` command."""

from __future__ import annotations

import importlib.metadata

from click.testing import CliRunner

from curate.cli import COMMANDS, main


def complete(words: str) -> list[str]:
    """What bash completion offers for the command line ``words`` (the cursor after its last word)."""
    env = {"_CURATE_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    return CliRunner().invoke(main, [], prog_name="curate", env=env).output.split()


def test_the_entry_point_is_curate_and_reports_the_installed_version():
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="curate")
    assert script.value == "curate.cli:main"
    result = CliRunner().invoke(main, ["--version"], prog_name="curate")
    assert result.exit_code == 0 and result.output == f"curate, version {importlib.metadata.version('dmue-curate')}\n"


def test_bash_completion_script_completes_subcommands_and_options():
    script = CliRunner().invoke(main, [], prog_name="curate", env={"_CURATE_COMPLETE": "bash_source"}).output
    assert "_CURATE_COMPLETE=bash_complete" in script and "complete -o nosort -F _curate_completion curate" in script
    assert complete("curate ") == [f"plain,{name}" for name in sorted(COMMANDS)]
    assert complete("curate sc") == ["plain,score"]
    assert complete("curate export x --pol") == ["plain,--policy"]
    assert complete("curate export x --policy ") == ["plain,decisions", "plain,auto", "plain,soft"]
