"""Temporary files for atomic writes: created beside their target with the permissions a plain
``open`` would give (``tempfile.mkstemp`` makes them private, 0600, which ``os.replace`` keeps)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def umask() -> int:
    """The process umask (read without changing it for longer than the call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_beside(target: Path, suffix: str = ".tmp") -> Path:
    """A new empty file ``.<name>.<random><suffix>`` in ``target``'s folder, mode 0666 & ~umask;
    write it, then ``os.replace`` it onto ``target``."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~umask())
    return Path(name)
