"""The examples of docs/formats.md run: every ``curate run`` command of the page, as ``curate inspect`` (same
reader options, no training), on the minimal layout the page shows, built here with tiny images.

The FERPlus example reads ``../shared/data`` (realdata); the FiftyOne example needs a dataset and is covered
by tests/data/test_reader_fiftyone.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from curate.cli import main

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "formats.md"
BASH = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
VOTES = "neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
AFFECTNET_HEADER = (
    "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
)


def commands() -> list[list[str]]:
    """Every ``curate run`` line of the page's bash blocks (continuations joined, comments dropped)."""
    out = []
    for block in BASH.findall(PAGE.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            args = shlex.split(line, comments=True)
            if args[:2] == ["curate", "run"]:
                out.append(args[2:])
    return out


def face(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), 128).save(path)


def build_layouts(root: Path) -> None:
    for name in ("train/angry/img001.jpg", "train/happy/img002.png", "test/angry/img101.jpg", "test/happy/img102.png"):
        face(root / "faces" / name)
    for name in ("img/0001.png", "img/0002.png"):
        face(root / name)
    (root / "faces.csv").write_text("path,label,split\nimg/0001.png,happy,train\nimg/0002.png,sad,test\n")
    (root / "ids.csv").write_text("file,emotion,usage\nimg/0001.png,3,train\nimg/0002.png,4,test\n")
    pixels = " ".join(["70"] * 2304)
    (root / "fer2013.csv").write_text(f"emotion,pixels,Usage\n0,{pixels},Training\n3,{pixels},PublicTest\n")
    (root / "fer2013new.csv").write_text(
        f"Usage,Image name,{VOTES}\nTraining,fer0000000.png,0,0,0,0,9,1,0,0,0,0\nPublicTest,fer0000001.png,0,10,0,0,0,0,0,0,0,0\n"
    )
    for name in ("train_00001", "test_0001"):
        face(root / "RAF-DB" / "Image" / "aligned" / f"{name}_aligned.jpg")
    (root / "RAF-DB" / "EmoLabel").mkdir(parents=True)
    (root / "RAF-DB" / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 5\ntest_0001.jpg 1\n")
    face(root / "AffectNet" / "Manually_Annotated_Images" / "1" / "abc.jpg")
    face(root / "AffectNet" / "Manually_Annotated_Images" / "1" / "def.jpg")
    (root / "AffectNet" / "training.csv").write_text(
        f'{AFFECTNET_HEADER}\n1/abc.jpg,0,0,8,8,"1.0;2.0",1,0.5,0.2\n1/def.jpg,0,0,8,8,"1.0;2.0",2,-0.5,0.1\n'
    )


def as_inspect(args: list[str]) -> list[str]:
    """``curate run`` arguments -> ``curate inspect`` arguments: ``--out`` dropped."""
    i = args.index("--out")
    return ["inspect", *args[:i], *args[i + 2 :]]


def test_the_page_has_an_example_per_format():
    formats = {args[args.index("--format") + 1] if "--format" in args else "auto" for args in commands()}
    assert {"imagefolder", "csv", "fer2013", "rafdb", "affectnet"} <= formats, formats


@pytest.mark.parametrize("args", [a for a in commands() if "../shared/data" not in a[0] and "fiftyone:" not in a[0]],
                         ids=shlex.join)  # fmt: skip
def test_format_example_reads_its_layout(args, tmp_path, monkeypatch):
    build_layouts(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*as_inspect(args), "--on-bad", "error"])
    assert result.exit_code == 0, result.output
    assert f"(format: {args[args.index('--format') + 1]})" in result.output and (
        "Problems: 0 error(s)" in result.output or "No problems found." in result.output
    )


@pytest.mark.realdata
def test_ferplus_example_reads_the_shared_mini_set(shared_data, monkeypatch):
    (args,) = [a for a in commands() if "../shared/data" in a[0]]
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, [*as_inspect(args), "--no-check-images"])
    assert result.exit_code == 0, result.output
    assert "(format: ferplus)" in result.output
