from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from curate.data.errors import DataError
from curate.data.images import check_image, file_problem, open_image


@pytest.mark.parametrize(
    ("mode", "color", "suffix"),
    [
        ("L", 100, ".png"),
        ("LA", (100, 50), ".png"),
        ("P", 3, ".png"),
        ("RGBA", (10, 20, 30, 0), ".png"),
        ("CMYK", (0, 0, 0, 0), ".jpg"),
        ("I;16", 100 * 256, ".png"),
        ("RGB", (1, 2, 3), ".bmp"),
    ],
)
def test_open_image_gives_rgb(tmp_path, make_image, mode, color, suffix):
    path = make_image(tmp_path / f"img{suffix}", mode=mode, color=color, size=(5, 4))
    img = open_image(path)
    assert img.mode == "RGB" and img.size == (5, 4)
    if mode in ("L", "I;16"):
        assert np.asarray(img)[0, 0].tolist() == [100, 100, 100]  # 16-bit grey scaled to 8 bits
    if mode == "RGBA":
        assert np.asarray(img)[0, 0].tolist() == [10, 20, 30]  # alpha dropped


def test_open_image_grey_mode(tmp_path, make_image):
    img = open_image(make_image(tmp_path / "a.png", mode="RGB", color=(50, 50, 50)), mode="L")
    assert img.mode == "L" and np.asarray(img)[0, 0] == 50


def test_check_image_good(tmp_path, make_image):
    assert check_image(make_image(tmp_path / "ok.png")) is None


def test_missing_file(tmp_path):
    assert check_image(tmp_path / "nope.png") == "image file not found"
    with pytest.raises(DataError) as info:
        open_image(tmp_path / "nope.png")
    assert (
        str(info.value)
        == f"{tmp_path / 'nope.png'}: image file not found. Restore or re-export the image, fix its path, or pass --on-bad skip to leave it out."
    )


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    assert check_image(tmp_path / "empty.png") == "image file is empty (0 bytes)"


def test_directory_where_a_file_is_expected(tmp_path):
    (tmp_path / "dir.png").mkdir()
    assert check_image(tmp_path / "dir.png") == "is a directory where an image file is expected"
    with pytest.raises(DataError, match="dir.png: is a directory where an image file is expected"):
        open_image(tmp_path / "dir.png")


def test_corrupt_file(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"this is not an image at all")
    assert check_image(tmp_path / "junk.png") == "not a readable image (unknown or corrupt format)"
    with pytest.raises(DataError, match=r"junk.png: not a readable image .*Restore or re-export"):
        open_image(tmp_path / "junk.png")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image(tmp_path, suffix):
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    problem = check_image(path)
    assert problem is not None and problem.startswith("image is corrupt or truncated")
    with pytest.raises(DataError, match="cut.*: image is corrupt or truncated"):
        open_image(path)


def test_non_utf8_file_name_bytes_and_surrogates(tmp_path, make_image):
    raw = os.fsencode(tmp_path) + b"/caf\xe9.png"
    try:
        with open(raw, "wb") as fh:
            Image.new("L", (4, 4)).save(fh, format="PNG")
    except OSError:
        pytest.skip("this filesystem refuses non-UTF-8 names")
    as_str = os.fsdecode(raw)  # what os.listdir returns: surrogate escapes
    for path in (raw, as_str):
        assert file_problem(path) == "file name is not valid UTF-8"
        assert check_image(path) == "file name is not valid UTF-8"
        with pytest.raises(DataError) as info:
            open_image(path)
        message = str(info.value)
        assert "caf\\xe9.png: file name is not valid UTF-8. Rename it to a UTF-8 name" in message
        message.encode("utf-8")
