"""A trained model's predictions on new clips or on a processed fold.

    python -m selfcross.predict RUN --clip interview.mp4 --text "I can't believe you did that"
    python -m selfcross.predict RUN --manifest clips.csv --out predictions.csv
    python -m selfcross.predict RUN --fold /data/folds/fold02 --split test

``RUN`` is a run folder (``result.json``, best checkpoint) or a folder written by
``selfcross.export`` (``--backend onnx`` runs its ONNX model). Features are made by the code that
prepared the run's data, with the settings its root's manifest recorded; the word vectors
(``glove=``) and ResNet-101 weights (``resnet=``) are checked against what the run was trained
with. The work is :mod:`selfcross.analysis.predict` (docs/using-models.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from selfcross.config import user_errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m selfcross.predict",
        description="Class probabilities of a trained model on new clips or a processed fold.",
    )
    parser.add_argument("run", type=Path, help="a run folder or an exported model folder")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--clip", type=Path, help="a video with an audio track, or an audio file")
    what.add_argument("--manifest", type=Path, help="a CSV of clips: path, transcript, "
                      "optional id, start, end, side")  # fmt: skip
    what.add_argument("--fold", type=Path, help="a processed fold folder (fold01, ...)")
    parser.add_argument("--text", help="the clip's transcript (alone: a text-only model)")
    parser.add_argument("--start", type=float, help="seconds into the clip (default 0)")
    parser.add_argument("--end", type=float, help="seconds into the clip (default its end)")
    parser.add_argument(
        "--side",
        choices=("left", "right"),
        help="the speaker's half of the frame (vision.region=speaker)",
    )
    parser.add_argument("--split", default="test", help="with --fold: train, dev or test")
    parser.add_argument("--glove", type=Path, help="glove.840B.300d.txt (also glove=PATH)")
    parser.add_argument("--resnet", type=Path, help="resnet101-*.pth (also resnet=PATH)")
    parser.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="onnx: an exported folder's model.onnx (ONNX Runtime)",
    )
    parser.add_argument("--out", type=Path, help="write the predictions (.csv or .json)")
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Arguments, with ``glove=PATH`` and ``resnet=PATH`` taken as ``--glove``/``--resnet``."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    spelled = []
    for arg in argv:
        key, _, value = arg.partition("=")
        spelled += [f"--{key}", value] if key in ("glove", "resnet") and value else [arg]
    parser = build_parser()
    args = parser.parse_args(spelled)
    if args.clip is None and args.manifest is None and args.fold is None and args.text is None:
        parser.error("give --clip (and --text), --text, --manifest or --fold")
    if args.text is not None and (args.manifest is not None or args.fold is not None):
        parser.error("--text goes with --clip or alone, not with --manifest or --fold")
    return args


def main(argv: list[str] | None = None):
    args = parse(argv)
    with user_errors():
        from selfcross.analysis.featurize import Clip, Resources
        from selfcross.analysis.inputs import open_model
        from selfcross.analysis.predict import (
            fold_predictions,
            format_table,
            predict_clips,
            read_clip_manifest,
            write_predictions,
        )

        model = open_model(args.run, args.backend)
        resources = Resources(glove=args.glove, resnet=args.resnet)
        if args.fold is not None:
            predictions = fold_predictions(model, args.fold, args.split)
        elif args.manifest is not None:
            predictions = predict_clips(model, read_clip_manifest(args.manifest), resources)
        else:
            utt = args.clip.stem if args.clip is not None else "text"
            clip = Clip(utt, args.clip, args.text, args.start, args.end, args.side)
            predictions = predict_clips(model, [clip], resources)
        print(format_table(predictions))
        for note in predictions.notes:
            if "out of vocabulary" in note:
                print(note)
        if args.out is not None:
            print(f"wrote {write_predictions(predictions, args.out)}")
        return predictions


if __name__ == "__main__":
    main()
