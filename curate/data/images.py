"""Safe image access: cheap file checks, full decode checks, and opening any image as RGB.

Paths may be ``str``, ``bytes`` or ``os.PathLike``; names that are not valid UTF-8 (bytes, or
``str`` holding surrogate escapes as ``os.listdir`` returns them) are reported, never crash.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from curate.data.errors import DataError

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
FILE_HINT = "Restore or re-export the image, fix its path, or pass --on-bad skip to leave it out."
RENAME_HINT = "Rename it to a UTF-8 name (e.g. `convmv -f latin1 -t utf8 --notest`)."

PathLike = str | bytes | os.PathLike


def is_image_name(name: str) -> bool:
    """True when ``name`` has an image file extension (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def name_problem(path: PathLike) -> str | None:
    """``"file name is not valid UTF-8"`` for undecodable names, else None."""
    try:
        os.fsdecode(path).encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8"
    return None


def file_problem(path: PathLike) -> str | None:
    """A cheap ``stat`` check: a problem string (bad name, missing, directory, empty), or None."""
    problem = name_problem(path)
    if problem:
        return problem
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "image file not found"
    except OSError as exc:
        return f"image file cannot be read ({exc.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory where an image file is expected"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_size == 0:
        return "image file is empty (0 bytes)"
    return None


def check_image(path: PathLike) -> str | None:
    """Full check: :func:`file_problem`, then PIL ``verify`` and ``load``; a problem string or None."""
    problem = file_problem(path)
    if problem:
        return problem
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                img.verify()
            with Image.open(path) as img:
                img.load()
    except UnidentifiedImageError:
        return "not a readable image (unknown or corrupt format)"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"image is corrupt or truncated ({exc})"
    return None


def check_images(paths: Sequence[PathLike], *, workers: int) -> list[str | None]:
    """:func:`check_image` of every path (``workers`` threads, at most the CPU count; tqdm bar on
    a terminal), in order."""
    with ThreadPoolExecutor(max_workers=max(1, min(workers, os.cpu_count() or 1))) as pool:
        return list(tqdm(pool.map(check_image, paths), total=len(paths), desc="check images", unit="img", disable=None))


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: 16/32-bit grey is scaled down, alpha is dropped."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I"):  # I, I;16, I;16B, ...: 16-bit range scaled to 8 bits
        arr = np.asarray(img).astype(np.int64)
        img = Image.fromarray(np.clip(arr >> 8, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), "L")
    elif img.mode == "P":
        img = img.convert("RGBA")
    return img.convert("RGB")


def open_image(path: PathLike, *, mode: str = "RGB") -> Image.Image:
    """Open ``path`` as a loaded 8-bit ``RGB`` (or ``L``) image with EXIF rotation applied.

    Raises :class:`DataError` naming the file when it is missing, empty, a directory,
    not valid UTF-8 or cannot be decoded.
    """
    problem = file_problem(path)
    if problem is None:
        try:
            with Image.open(path) as img:
                img.load()
                rgb = to_rgb(ImageOps.exif_transpose(img))
            return rgb if mode == "RGB" else rgb.convert(mode)
        except UnidentifiedImageError:
            problem = "not a readable image (unknown or corrupt format)"
        except (OSError, SyntaxError, ValueError) as exc:
            problem = f"image is corrupt or truncated ({exc})"
    raise DataError(os.fsdecode(path), None, problem, RENAME_HINT if problem.startswith("file name") else FILE_HINT)
