"""A finished run scored on another dataset's split through a declared class map.

    python -m selfcross.evaluate RUN data=meld data.root=/data/meld-folds class_map=iemocap_meld

``RUN`` is a run folder (``result.json``, best checkpoint), or a folder of runs (a sweep's:
every run under it is scored, as ``make table5`` does). The other arguments name the scored
data as a run's command line does (``data=``, ``data.*``, ``class_set=``, ``fold=``) and the
class map (``conf/class_map/<name>.yaml``); ``--split`` picks the split (default test). Writes
``<RUN>/cross_corpus-<map>-<target>.json`` and prints the scores over the shared classes, the
run's classes whose logits were masked and the data's classes left out
(docs/protocols.md, "Cross-corpus evaluation"). The work is :mod:`selfcross.analysis.crosscorpus`.
A command of its own rather than a ``selfcross.predict`` option: it takes Hydra-style
overrides of the scored data and writes a record for the tables, where predict writes
predictions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from selfcross.config import user_errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m selfcross.evaluate",
        description="Score a finished run on another dataset's split through a class map; "
        "write cross_corpus-<map>-<target>.json in the run's folder.",
    )
    parser.add_argument("run", type=Path, help="a finished run's folder, or a folder of runs")
    parser.add_argument(
        "overrides", nargs="+",
        help="class_map=NAME and the scored data: data=NAME data.root=PATH [class_set=...] "
        "[fold=K]",
    )  # fmt: skip
    parser.add_argument("--split", default="test", help="train, dev or test (default test)")
    return parser


def main(argv: list[str] | None = None):
    args = build_parser().parse_args(argv)
    with user_errors():
        from selfcross.analysis.crosscorpus import describe, evaluate_run
        from selfcross.errors import ConfigError

        maps = [o.partition("=")[2] for o in args.overrides if o.startswith("class_map=")]
        if len(maps) != 1 or not maps[0]:
            raise ConfigError("give the class map once: class_map=NAME (conf/class_map/)")
        overrides = [o for o in args.overrides if not o.startswith("class_map=")]
        runs = run_folders(args.run)
        for run in runs:
            result, path = evaluate_run(run, overrides, maps[0], args.split)
            for line in describe(result, path):
                print(line, flush=True)
        return result


def run_folders(path: Path) -> list[Path]:
    """``path`` if it holds a run's ``result.json``, else every run's folder under it."""
    from selfcross.analysis.results import find_result_files
    from selfcross.errors import DataError
    from selfcross.training.record import RESULT_FILE

    if (path / RESULT_FILE).is_file():
        return [path]
    found = [p.parent for p in find_result_files(path)] if path.is_dir() else []
    if not found:
        raise DataError(path, f"no {RESULT_FILE} in it or under it: not a run or a sweep")
    return found


if __name__ == "__main__":
    main()
