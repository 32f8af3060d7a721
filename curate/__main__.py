"""``python -m curate``: the command line, e.g. under ``torchrun --nproc_per_node 4 -m curate score ...``."""

from curate.cli import main

main(prog_name="curate")
