"""Print a model's layers and trainable parameter count, from the configuration alone.

    python -m selfcross.summary model=cross modality=TVA data.preset=paper

Takes the same overrides as ``selfcross.run`` and refuses the same invalid configurations, but
reads and generates no data: the network is sized from ``data.shapes``, so ``data.root`` may stay
unset (``data=iemocap model=cross`` counts the real folds' model without them). The last line is
one JSON object with ``n_params`` (trainable parameters).
"""

from __future__ import annotations

import json
import sys

from hydra.utils import instantiate
from lightning.pytorch.utilities.model_summary import ModelSummary

from selfcross.config import compose, hydra_arguments, shown_config, user_errors, validate


def summarize(overrides: list[str]) -> dict:
    """Print the layer table of the configured model and return (and print) its sizes."""
    cfg = compose([*overrides, "paths.output_dir=."])
    validate(cfg, need_data=False)
    module = instantiate(cfg.model)
    print(ModelSummary(module, max_depth=4))
    network = module.network
    per_part = {
        name: sum(p.numel() for p in part.parameters() if p.requires_grad)
        for name, part in network.named_children()
    }
    info = {
        "model": cfg.model.name,
        "modality": cfg.modality.name,
        "data": cfg.data.name,
        "preset": cfg.data.get("preset"),
        "shapes": {m: dict(cfg.data.shapes[m]) for m in network.modalities},
        "parts": per_part,
        "n_params": sum(per_part.values()),
    }
    print(json.dumps(info))
    return info


def main(argv: list[str] | None = None) -> None:
    """The command: ``--help`` prints this module's docstring."""
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
        summarize(args)


if __name__ == "__main__":
    main()
