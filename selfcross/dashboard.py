"""A W&B workspace for Table 1: test WA/UWA per (model, modality) cell, learning curves.

    python -m selfcross.dashboard --entity TEAM [--project selfcross] [--data iemocap]

Runs are grouped by their W&B group, the run's ``cell`` (``<model>-<modality>``, one group per
table cell; docs/wandb.md), so each
bar is a cell's mean with its standard deviation over folds and seeds; the run table is grouped by
model and modality. Saving needs W&B credentials (``WANDB_API_KEY`` or ``wandb login``); without
them the command says what it needs and exits 2. Building the workspace needs no network.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m selfcross.dashboard", description=__doc__)
    parser.add_argument("--entity", default=os.environ.get("WANDB_ENTITY"),
                        help="W&B user or team (default: $WANDB_ENTITY)")  # fmt: skip
    parser.add_argument("--project", default="selfcross")
    parser.add_argument("--data", default=None, help="only runs of this data label, e.g. iemocap")
    args = parser.parse_args(argv)

    from selfcross.training.tracking import has_credentials
    from selfcross.training.workspace import build_workspace

    missing = []
    if not has_credentials():
        missing.append("W&B credentials (set WANDB_API_KEY or run `wandb login`)")
    if not args.entity:
        missing.append("the W&B entity (--entity TEAM or WANDB_ENTITY)")
    if missing:
        print(
            f"error: the dashboard is saved to W&B and needs {' and '.join(missing)}; offline "
            "runs are uploaded with `wandb sync <run dir>/wandb/offline-run-*`",
            file=sys.stderr,
        )
        sys.exit(2)
    workspace = build_workspace(args.entity, args.project, args.data)
    try:
        workspace.save()
    except Exception as err:  # network, permissions: say so in one line
        print(f"error: W&B refused the workspace: {str(err).splitlines()[0]}", file=sys.stderr)
        sys.exit(1)
    print(f"W&B workspace saved: {workspace.url}")


if __name__ == "__main__":
    main()
