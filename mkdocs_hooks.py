"""MkDocs hook: the README is the site's home page (``index.md``), read at build time.

The README links into the docs as ``docs/PAGE.md`` (right on GitHub and in a clone); on the site
those pages sit beside the home page, so the ``docs/`` prefix is dropped from relative link targets.
Any other relative link in the README points outside the site and fails the strict build.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

README = Path(__file__).resolve().parent / "README.md"
DOCS_LINK = re.compile(r"\]\(docs/")


def readme_as_index(text: str) -> str:
    return DOCS_LINK.sub("](", text)


def on_files(files: Files, config) -> Files:
    if files.get_file_from_path("index.md") is not None:
        raise ValueError("docs/index.md exists: the home page is generated from README.md")
    files.append(File.generated(config, "index.md", content=readme_as_index(README.read_text(encoding="utf-8"))))
    return files
