"""``python -m curate.cli.measured RESULT.json ARGS...``: run ``curate ARGS`` in this process,
then write its wall time (s) and peak resident memory (MiB) to RESULT.json (only on success)."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import click


def main() -> int:
    from curate.cli import main as curate

    result, args = Path(sys.argv[1]), sys.argv[2:]
    started = time.perf_counter()
    try:
        curate.main(args, prog_name="curate", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return 1
    usage = {
        "wall_s": time.perf_counter() - started,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    tmp = result.with_suffix(".tmp")
    tmp.write_text(json.dumps(usage))
    tmp.replace(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
