"""Output safety: the export error, atomic replacement of files and folders, and path checks.

Every output is built at a temporary path beside its target (same folder, so ``os.replace`` is a
rename) and only moved into place by :meth:`Staged.commit`; an exception before that removes the
temporary and leaves any previous output untouched. A folder output carries a hidden
:data:`MARKER` file so that ``force`` only ever replaces a folder an earlier export wrote.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from curate.files import temp_beside, umask

#: Hidden file inside an exported folder (readers ignore hidden entries).
MARKER = ".curate-export"


class ExportError(Exception):
    """A problem that stops an export; the message names the file or sample and what to do."""


class Staged:
    """A temporary file or folder beside ``target`` that replaces ``target`` on :meth:`commit`."""

    def __init__(self, target: Path, *, folder: bool) -> None:
        self.target = target
        self.folder = folder
        prefix, suffix = f".{target.name}.", ".tmp"
        if folder:
            self.path = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=target.parent))
        else:
            self.path = temp_beside(target, suffix)
        self.path.chmod((0o777 if folder else 0o666) & ~umask())

    def commit(self) -> None:
        """Move the temporary into place (a previous folder is renamed aside, then removed)."""
        if not self.folder:
            os.replace(self.path, self.target)
            return
        old = None
        if self.target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", suffix=".old", dir=self.target.parent))
            os.replace(self.target, old / "previous")
        os.replace(self.path, self.target)
        if old is not None:
            shutil.rmtree(old)

    def abort(self) -> None:
        """Remove the temporary (no-op after :meth:`commit`)."""
        if self.folder:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            self.path.unlink(missing_ok=True)


def check_output(
    out: Path,
    sidecar: Path,
    *,
    force: bool,
    folder: bool,
    protected_files: Iterable[Path],
    protected_trees: Iterable[Path],
    images: Iterable[str],
) -> None:
    """Refuse an output that would overwrite the inputs, or an existing output without ``force``.

    ``protected_files`` (scores file, original label file) and ``images`` must not be ``out``;
    ``protected_trees`` (an ImageFolder source) must not hold or be held by ``out``; a folder
    ``out`` must not hold any of ``images`` (replacing it would delete them) nor lie inside the
    folder that holds them all (it would add a class to the source tree).
    """
    if not out.parent.is_dir():
        raise ExportError(f"output folder {out.parent} does not exist; create it first")
    real = out.resolve()
    images = list(images)
    resolved = [Path(p).resolve() for p in images]  # links followed, once for the checks below
    for path in protected_files:
        if real == path.resolve():
            raise ExportError(
                f"{out} is the source file {path}; the source labels are never overwritten. Choose another --out"
            )
    hit = next((p for p, r in zip(images, resolved) if r == real), None)
    if hit is not None:
        raise ExportError(f"{out} is the source image {hit}; source images are never overwritten. Choose another --out")
    for tree in protected_trees:
        tree = tree.resolve()
        if real == tree or tree in real.parents or real in tree.parents:
            raise ExportError(
                f"{out} overlaps the source image tree {tree}; the source is never modified. Choose an --out outside it"
            )
    if folder:
        inside = next((p for p in images if _within(Path(p), real)), None)
        if inside is not None:
            raise ExportError(f"{out} holds source image {inside}; choose an --out that holds no source images")
        root = _image_root(resolved)
        if root is not None and (real == root or real.is_relative_to(root)):
            raise ExportError(
                f"{out} lies inside {root}, the folder that holds the source images; the source"
                " is never modified. Choose an --out outside it"
            )
    for path in (out, sidecar):
        if not (path.exists() or path.is_symlink()):
            continue
        if not force:
            raise ExportError(f"{path} exists; pass --force to replace it")
        if path is out and folder != out.is_dir():
            kind = "a folder" if out.is_dir() else "a file"
            raise ExportError(
                f"{out} is {kind} but this format writes {'a folder' if folder else 'a file'};"
                " remove it or choose another --out"
            )
        if path is out and folder and not (out / MARKER).is_file():
            raise ExportError(
                f"{out} is a folder that no curate export wrote (no {MARKER} file);"
                " --force replaces only earlier exports. Remove it yourself or choose another --out"
            )


def safe_component(name: str, *, what: str, sample_id: str) -> str:
    """``name`` when it is one plain path component, else ExportError naming the sample."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ExportError(
            f"sample {sample_id!r}: {what} {name!r} is not a plain file or folder name;"
            " it could escape the output folder. Fix the sample's id or class name"
        )
    return name


def safe_file_name(sample_id: str, filepath: str) -> str:
    """The image's file name in an exported tree: the last component of ``sample_id`` (plus the
    image's suffix when it has none). Only that component is used, so an absolute id or one with
    ``..`` (a CSV listing ``/data/x.png`` or ``../x.png``) lands inside the tree too."""
    name = PurePosixPath(sample_id.replace("\\", "/")).name
    suffix = Path(filepath).suffix
    if suffix and not name.lower().endswith(suffix.lower()):
        name += suffix
    return safe_component(name, what="file name", sample_id=sample_id)


def _image_root(resolved: list[Path]) -> Path | None:
    """The deepest folder holding every image (paths with links resolved), or None when that is a
    filesystem root or home-level folder (images spread too widely to call it the source's tree)."""
    if not resolved:
        return None
    root = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    return root if len(root.parts) > 2 else None


def _within(path: Path, folder: Path) -> bool:
    """``path`` (as given, or with links resolved) lies inside ``folder``."""
    return path.absolute().is_relative_to(folder) or path.resolve().is_relative_to(folder)
