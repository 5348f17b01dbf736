"""Build processed folds from a dataset's release: IEMOCAP (docs/preparing-iemocap.md) or MELD
(docs/preparing-meld.md).

    python -m selfcross.prepare raw=PATH/IEMOCAP_full_release glove=PATH/glove.840B.300d.txt \\
        out=PATH vision.weights=PATH/resnet101-63fe2227.pth [split=session] [jobs=4]
    python -m selfcross.prepare dataset=meld raw=PATH/MELD.Raw glove=PATH/glove.840B.300d.txt \\
        out=PATH vision.weights=PATH/resnet101-63fe2227.pth [strict=true]
    python -m selfcross.prepare raw=PATH/IEMOCAP_full_release out=PATH features=pretrained \\
        audio.encoder=DIR text.encoder=DIR vision.encoder=DIR [audio.max_frames=500]
    python -m selfcross.prepare source=PATH/folds out=PATH/folds-4class class_set=4class

Options are Hydra overrides of conf/prepare.yaml (key=value; dataset=<name> adds
conf/dataset/<name>.yaml). The folds are written to out/fold01 .. out/fold05 (MELD: out/fold01,
the official split); features are cached per utterance under out/cache, so a rerun (after a
crash, or with another split) reuses every finished utterance. features=pretrained reads Hugging
Face encoders from local folders (docs/features.md). source=ROOT class_set=NAME writes a class
set's folds from an already prepared root, without extracting features again
(selfcross/prepare/derive.py, docs/protocols.md "Class sets").
"""

from __future__ import annotations

import sys

from selfcross.config import compose, user_errors
from selfcross.errors import ConfigError
from selfcross.utils import signals


def compose_prepare(overrides: list[str]):
    """conf/prepare.yaml with ``overrides``; a malformed or unknown override is a ConfigError."""
    from hydra.errors import HydraException

    try:
        return compose(overrides, config_name="prepare")
    except HydraException as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"configuration: {first}") from None


def main(argv: list[str] | None = None) -> dict | None:
    args = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return None
    with user_errors():
        from selfcross.prepare.build import prepare
        from selfcross.prepare.derive import derive_from_config
        from selfcross.prepare.settings import from_config

        cfg = compose_prepare(args)
        if cfg.get("source") is not None:
            return derive_from_config(cfg)
        settings = from_config(cfg)
        signals.phase(
            f"while preparing the folds in {settings.out}",
            f"finished features are cached in {settings.cache}; rerun the same command to resume",
        )
        try:
            summary = prepare(settings)
            signals.finished(f"the preparation ({settings.out})")
            return summary
        except KeyboardInterrupt:
            print(
                f"interrupted: finished features are cached in {settings.cache}; run the same "
                "command again to resume",
                file=sys.stderr,
            )
            sys.exit(130)


if __name__ == "__main__":
    main()
