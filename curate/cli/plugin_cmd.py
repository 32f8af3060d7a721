"""``curate plugin install``: make the review plugin visible to the FiftyOne App."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

PLUGIN = "curate_review"


def plugin_source() -> Path:
    """The plugin folder of this source checkout (``<repo>/plugins/curate_review``)."""
    import curate

    source = Path(curate.__file__).resolve().parents[1] / "plugins" / PLUGIN
    if not (source / "fiftyone.yml").is_file():
        raise click.ClickException(f"{source} not found: install dmue-curate from a source checkout (pip install -e .)")
    return source


@click.group("plugin")
def plugin() -> None:
    """Manage the FiftyOne review plugin (@dmue-curate/review)."""


@plugin.command("install")
@click.option(
    "--dir",
    "target_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Plugins folder to install into (default: FiftyOne's plugins_dir, i.e. FIFTYONE_PLUGINS_DIR).",
)
@click.option("--copy", is_flag=True, help="Copy the plugin instead of symlinking it (a symlink follows the checkout).")
@click.option("--force", is_flag=True, help="Replace an existing plugin of the same name.")
def install(target_dir: Path | None, copy: bool, force: bool) -> None:
    """Install the review plugin (relabel, accept suggestion, keep, exclude, undo, similar
    faces, export, review-queue panel) into FiftyOne's plugins folder.

    Instead of installing, you can point FiftyOne at the checkout's plugins folder:
    export FIFTYONE_PLUGINS_DIR=<repo>/plugins (before starting the App).

    \b
    Examples:
      curate plugin install
      curate plugin install --dir ~/fiftyone/__plugins__ --copy --force
      FIFTYONE_PLUGINS_DIR=$PWD/plugins curate app mini   # no install needed
    """
    source = plugin_source()
    if target_dir is None:
        import fiftyone as fo

        target_dir = Path(fo.config.plugins_dir)
    target = target_dir.expanduser() / PLUGIN
    if target.is_symlink() and target.resolve() == source and not copy:
        click.echo(f"already installed: {target} -> {source}")
        return
    if target.exists() or target.is_symlink():
        if not force:
            raise click.ClickException(f"{target} exists; pass --force to replace it")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        target.symlink_to(source, target_is_directory=True)
    click.echo(f"installed {'copy' if copy else 'symlink'}: {target}{'' if copy else f' -> {source}'}")
    click.echo("restart the App (curate app NAME) to load it")
