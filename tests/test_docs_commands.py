"""Every ``curate`` command shown in README.md and docs/*.md parses against the real CLI, and the cheap ones run.

The commands are the lines of the pages' code blocks that start with ``curate`` (or cite one after a make
target: ``make bench  # = curate bench ...``) and the inline code spans that start with ``curate`` (a span may
wrap a line). Each is parsed by click down to its subcommand: every subcommand, option and choice must exist.
The paths need not exist (they are the reader's), an ALL-CAPS word is a placeholder (``NAME``, ``FORMAT``),
and an inline span may leave out required arguments (prose cites ``curate score RUN DATA``); a code block may not.

Then every other ``inspect``, ``export``, ``score``, ``rerank`` and ``backbones`` command runs as written, in a
folder of its own where ``runs/mini`` and ``runs/x`` are a synthetic run (1 epoch), ``new_faces/`` an image
folder of synthetic faces, ``decided.csv`` curator decisions and ``../shared/data`` the real data (realdata).
The other subcommands train, serve or write into FiftyOne: they are parsed only, as are the commands listed in
PARSE_ONLY, each with its reason. docs/formats.md's ``curate run`` examples also read their layouts in
tests/test_docs_formats.py.
"""

from __future__ import annotations

import copy
import random
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from curate.cli import main

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1", re.S | re.M)
INLINE = re.compile(r"`([^`]+)`")
COMMAND = re.compile(r"\s*curate\s")
CITED = re.compile(r"#\s*=\s*(curate\s.*)$")  # make bench  # = curate bench ...
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*")

#: subcommands that are parsed only, and why
PARSE_ONLY_SUBCOMMANDS = {
    "run": "trains DMUE (minutes on the synthetic set, hours on FER2013)",
    "train": "trains DMUE",
    "bench": "trains every compared method: hours",
    "demo": "trains DMUE on 2,000 synthetic faces (minutes)",
    "app": "serves the App until Ctrl-C (tests/fo/test_fo_browser.py serves it)",
    "plugin": "writes into the user's FiftyOne plugins folder (tests/fo/test_fo_cli.py installs into a temp one)",
    "load": "writes into FiftyOne's database (tests/fo/test_fo_load.py)",
    "pretrain": "trains the self-supervised stage (minutes; tests/test_pretrain.py runs it on synthetic faces)",
}
#: commands of the cheap subcommands that are parsed only, and why
PARSE_ONLY = {
    "curate export fiftyone:mini --format native --policy decisions --out cleaned.csv":
        "reads the curated FiftyOne dataset mini (exports from FiftyOne: tests/export/test_export_fiftyone.py)",
    "curate export fiftyone:mini --format native --policy decisions --out labels.clean.csv":
        "reads the curated FiftyOne dataset mini (exports from FiftyOne: tests/export/test_export_fiftyone.py)",
    "curate export runs/raf/scores.parquet --format rafdb --policy auto --confidence 0.9 "
    "--out RAF-DB/EmoLabel/list_patition_label.clean.txt":
        "needs a run on RAF-DB (rafdb exports: tests/export/test_export_formats.py)",
    "curate score runs/full planted/labels.csv --format csv --out planted_scores.parquet":
        "needs the full FER2013 Training run and the planted-duplicates set of docs/data-issues.md",
    "curate score runs/mini many_faces/ --format imagefolder --out many.parquet --shards 4":
        "spawns 4 scoring processes on a folder of the user's (sharded = one process: tests/test_sharded_score.py)",
    "curate score runs/big big.csv --out big.parquet --shards 4":
        "spawns 4 scoring processes on a large set (tests/test_sharded_score.py; bench/bench_scale.py)",
}  # fmt: skip
RUNNABLE = {"inspect", "export", "score", "rerank", "backbones"}


@dataclass(frozen=True)
class Example:
    page: str  # relative to the repository
    line: int
    args: tuple[str, ...]  # after "curate"
    inline: bool

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def text(self) -> str:
        return shlex.join(["curate", *self.args])


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def examples_of(page: Path) -> list[Example]:
    """The ``curate`` commands of one page, in order, with their line numbers."""
    text, name, out = page.read_text(encoding="utf-8"), str(page.relative_to(REPO)), []
    for block in FENCE.finditer(text):
        first, lines, i = _line(text, block.start(2)), block.group(2).split("\n"), 0
        while i < len(lines):
            start, line = i, lines[i]
            while line.rstrip().endswith("\\") and i + 1 < len(lines):  # a continuation line
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i]
            i += 1
            cited = CITED.search(line)
            line = cited.group(1) if cited else line
            if COMMAND.match(line):
                out.append(Example(name, first + start, tuple(shlex.split(line, comments=True)[1:]), inline=False))
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for span in INLINE.finditer(prose):
        if COMMAND.match(span.group(1)):
            out.append(Example(name, _line(prose, span.start()), tuple(shlex.split(span.group(1))[1:]), inline=True))
    return out


EXAMPLES = [e for page in PAGES for e in examples_of(page)]


class _OrPlaceholder(click.ParamType):
    """The option's own type, that also takes an ALL-CAPS placeholder."""

    def __init__(self, inner: click.ParamType) -> None:
        self.inner, self.name = inner, inner.name

    def convert(self, value, param, ctx):
        if isinstance(value, str) and PLACEHOLDER.fullmatch(value):
            return value
        return self.inner.convert(value, param, ctx)


def relaxed(command: click.Command, *, required: bool) -> click.Command:
    """A copy of ``command`` for parsing a documented command: paths need not exist, placeholders pass,
    callbacks do not run (--weights checks its file), and required parameters may be left out unless
    ``required``."""
    command = copy.copy(command)
    params = []
    for param in command.params:
        param = copy.copy(param)
        if isinstance(param.type, click.Path):
            param.type = copy.copy(param.type)
            param.type.exists = False
        elif not isinstance(param.type, (click.types.StringParamType, click.types.BoolParamType)):
            param.type = _OrPlaceholder(param.type)
        param.callback = None
        param.required = param.required and required
        params.append(param)
    command.params = params
    return command


def subcommand(args: tuple[str, ...]) -> tuple[click.Command, list[str], str]:
    """(command, its arguments, its name) of ``curate ARGS``; a UsageError names an unknown subcommand."""
    command, rest, name = main, list(args), "curate"
    ctx = click.Context(main, info_name=name)
    while isinstance(command, click.Group):
        if not rest or rest[0].startswith("-"):
            return command, rest, name
        sub, command, rest = command.resolve_command(ctx, rest)
        name = f"{name} {sub}"
        ctx = click.Context(command, info_name=sub, parent=ctx)
    return command, rest, name


def parse(example: Example, *, required: bool) -> None:
    """Parse ``example`` with click; raises click.UsageError (or BadParameter) when it does not."""
    command, rest, name = subcommand(example.args)
    if isinstance(command, click.Group):  # group options only: --version, --help
        known = {opt for p in command.params for opt in p.opts}
        unknown = [a for a in rest if a.startswith("-") and a not in known]
        if unknown or not rest:
            raise click.UsageError(f"{name}: no subcommand, or unknown option(s) {unknown}")
        return
    with relaxed(command, required=required).make_context(name, rest):
        pass


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.where)
def test_documented_command_parses(example: Example):
    try:
        parse(example, required=not example.inline)
    except click.ClickException as exc:
        pytest.fail(f"{example.where}: `{example.text}` does not parse: {exc.format_message()}")


def why_parse_only(example: Example) -> str | None:
    """None when ``example`` runs here, else why it is only parsed."""
    name = example.args[0]
    if name in PARSE_ONLY_SUBCOMMANDS:
        return PARSE_ONLY_SUBCOMMANDS[name]
    if example.text in PARSE_ONLY:
        return PARSE_ONLY[example.text]
    if name != "--version" and name not in RUNNABLE:
        return f"no rule for `curate {name}`: add it to RUNNABLE or PARSE_ONLY_SUBCOMMANDS"
    if any(PLACEHOLDER.fullmatch(a) or "NAME" in a for a in example.args):
        return "a synopsis with placeholders"
    try:
        parse(example, required=True)
    except click.ClickException:
        return "a fragment cited in prose (required arguments left out)"
    return None


def test_every_command_is_run_or_parsed_only_for_a_listed_reason():
    reasons = {e.where: why_parse_only(e) for e in EXAMPLES}
    unlisted = [f"{where}: {why}" for where, why in reasons.items() if why and why.startswith("no rule")]
    assert not unlisted, unlisted
    documented = {e.text for e in EXAMPLES}
    assert not set(PARSE_ONLY) - documented, f"PARSE_ONLY lists commands no page shows: {set(PARSE_ONLY) - documented}"
    runs = {e.args[0] for e in EXAMPLES if reasons[e.where] is None}
    assert {"inspect", "export", "score", "rerank", "backbones", "--version"} <= runs, runs


RUN = sorted({e.text: e for e in EXAMPLES if why_parse_only(e) is None}.values(), key=lambda e: e.where)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """``inputs/``: a synthetic run as ``runs/mini`` and ``runs/x``, ``new_faces/`` (an image folder) and
    ``decided.csv``; ``shared`` links to ../shared/data's folder when it exists."""
    from curate import records
    from curate.data.synthetic import generate

    root = tmp_path_factory.mktemp("docs-commands")
    inputs = root / "inputs"
    generate(120, inputs / "synthetic", seed=3, noise_rate=0.3)
    fast = ["--epochs", "1", "--ramp-a", "1", "--workers", "0", "--image-size", "32", "--no-load"]
    done = CliRunner().invoke(
        main, ["run", str(inputs / "synthetic" / "labels.csv"), "--out", str(inputs / "runs" / "mini"), *fast]
    )
    assert done.exit_code == 0, done.output
    (inputs / "runs" / "x").symlink_to("mini")
    scores = records.read_scores(inputs / "runs" / "mini" / "scores.parquet")
    classes = scores.attrs["classes"]
    for _, row in scores.groupby("given_label").head(2).iterrows():
        target = inputs / "new_faces" / classes[row["given_label"]] / Path(row["filepath"]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(row["filepath"], target)
    ids = scores["sample_id"].tolist()
    rng = random.Random(0)
    decided = [f"{sid},{rng.choice(['correct', classes[0], ''])}" for sid in ids[:12]]
    (inputs / "decided.csv").write_text("sample_id,label\n" + "\n".join(decided) + "\n")
    shared = REPO.parent / "shared"
    if shared.is_dir():
        (root / "shared").symlink_to(shared)
    return root


@pytest.mark.parametrize(
    "example",
    [pytest.param(e, marks=[pytest.mark.realdata, pytest.mark.slow] if "../shared/data" in e.text else [])
     for e in RUN],
    ids=lambda e: e.text,
)  # fmt: skip
def test_documented_command_runs(example: Example, sandbox: Path, request, monkeypatch):
    if "../shared/data" in example.text:
        request.getfixturevalue("shared_data")  # skips (fails in CI) without the real data
    cwd = sandbox / f"cwd-{RUN.index(example)}"
    cwd.mkdir()
    for name in ("runs", "new_faces", "decided.csv"):
        (cwd / name).symlink_to(sandbox / "inputs" / name)
    monkeypatch.chdir(cwd)
    done = CliRunner().invoke(main, list(example.args))
    assert done.exit_code == 0, f"{example.where}: `{example.text}` failed:\n{done.output}"
    if "--out" in example.args:
        out = cwd / example.args[example.args.index("--out") + 1]
        assert out.exists(), f"{example.where}: `{example.text}` wrote no {out}"
