"""``curate backbones``: list the backbones the model factory can build."""

from __future__ import annotations

import click


@click.command("backbones")
def backbones() -> None:
    """List registered backbone names (torchvision classifiers and compact CPU models).

    \b
    Example:
      curate backbones
    """
    from dmue_core.backbones import list_backbones

    for name in list_backbones():
        click.echo(name)
