"""Check processed folds before training: every rule of the fold reader, and a summary.

    python -m selfcross.check data=iemocap data.root=/path/to/folds
    python -m selfcross.check data.preset=paper modality=TV data.on_nonfinite=zero

Takes the same overrides as ``selfcross.run`` (a synthetic source is generated first if needed)
and checks every fold of the root (as many as its manifest, dataset.json, says; without one,
data.n_folds) with the options a run would use: the modalities' files, data.shapes,
data.drop_zero_video, data.text_source and data.on_nonfinite. Prints the root's feature set
(each modality's encoder, weights digest, layer, width and frame rate; docs/features.md), then
per fold the utterances per class id and name beside the paper's whole-corpus counts, the
utterances dropped for having no video, and per split and modality the valid lengths and feature
statistics; then every problem as one ``error: <path>: <problem>`` line. Exit status 0 when all
folds are valid, 2 otherwise. Feature files are read block by block, so memory stays bounded at
any fold size.
"""

from __future__ import annotations

import sys

from selfcross import MODALITIES
from selfcross.config import compose, hydra_arguments, shown_config, user_errors, validate
from selfcross.data.datasets import published_counts
from selfcross.data.synthetic import ensure_synthetic
from selfcross.data.validate import CheckReport, check_root
from selfcross.manifest import feature_set_label, root_feature_set


def check_config(overrides: list[str]) -> CheckReport:
    """Compose the run configuration, generate synthetic folds if needed, check all folds."""
    from hydra.utils import instantiate

    cfg = compose([*overrides, "paths.output_dir=."])
    validate(cfg)
    datamodule = instantiate(cfg.data)
    folds = range(1, datamodule.n_folds + 1)  # the root's manifest's count, when it has one
    for line in feature_lines(root_feature_set(datamodule.root)):
        print(line)
    if datamodule.synthetic is not None:
        ensure_synthetic(
            datamodule.root, folds, datamodule.synthetic, datamodule.class_names, len(folds)
        )
    published = published_counts(cfg.data.name)
    if cfg.data.get("class_set") is not None:  # the set's published counts, by its class names
        published = dict(zip(cfg.data.class_names, cfg.data.class_counts, strict=True))
    return check_root(
        datamodule.root, datamodule.options, datamodule.class_names, folds, published
    )


def feature_lines(features: dict) -> list[str]:
    """The feature set of the root's manifest (docs/features.md), as printed."""
    lines = [f"Feature set: {feature_set_label(features)}"]
    for modality in [m for m in MODALITIES if m in features]:
        entry = features[modality]
        shown = ", ".join(f"{k} {entry.get(k)}" for k in ("weights", "layer", "width", "rate"))
        lines.append(f"  {modality}: {entry.get('encoder')} ({shown})")
    return lines


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return
    arguments = hydra_arguments(args)
    if arguments is not None and arguments.cfg:  # Hydra's --cfg job|hydra|all, -p, --resolve
        with user_errors():
            print(shown_config(arguments, list(arguments.overrides)), flush=True)
        return
    with user_errors():
        report = check_config(args)
    print(report.format(), flush=True)
    sys.exit(0 if report.ok else 2)


if __name__ == "__main__":
    main()
