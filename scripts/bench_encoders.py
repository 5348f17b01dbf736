"""CPU time and peak memory of the pretrained encoders of ``features=pretrained``, at base size
with random weights (what they cost does not depend on the weights), and the disk size of a
prepared IEMOCAP fold per feature set.

    nice .venv/bin/python scripts/bench_encoders.py --work /tmp/bench-encoders [--utterances 8]

Each encoder family is built from its library's default (base-size) configuration and saved
once under ``--work`` (``save_pretrained``: nothing is downloaded), then measured in a fresh
process through selfcross's own extractors (:mod:`selfcross.prepare.encoders`), on one CPU
thread: ``--utterances`` utterances of IEMOCAP's mean length (4.5 s of 16 kHz audio; a 12-word
transcript; 14 frames, 3 per second) after one warm-up call. It reports CPU seconds (user +
system) per 1,000 utterances and the process's peak resident memory. One JSON line per encoder on
stdout; docs/features.md quotes the figures. The disk sizes are computed from the fold layout the
preparation writes (``writer.fold_layout``) for IEMOCAP's 7,487 utterances.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECONDS = 4.5
"""IEMOCAP's mean utterance length."""
WORDS = "well i don't know what you mean , why are you so angry".split()
FAMILIES = {
    "wavlm-base": ("audio", "WavLMModel", "WavLMConfig"),
    "hubert-base": ("audio", "HubertModel", "HubertConfig"),
    "wav2vec2-base": ("audio", "Wav2Vec2Model", "Wav2Vec2Config"),
    "roberta-base": ("text", "RobertaModel", "RobertaConfig"),
    "bert-base": ("text", "BertModel", "BertConfig"),
    "clip-vit-base-patch32": ("vision", "CLIPVisionModelWithProjection", "CLIPVisionConfig"),
}
IEMOCAP_UTTERANCES = 7487


def build(folder: Path, family: str) -> Path:
    """The base-size encoder of ``family`` with random weights, saved once."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    import transformers

    from tests.helpers.encoderkit import save_text

    kind, model_name, config_name = FAMILIES[family]
    torch.manual_seed(0)
    if kind == "text":  # the test kit's word-level tokenizer; the model at base size
        save_text(folder, "roberta" if family.startswith("roberta") else "bert")
    config = getattr(transformers, config_name)()
    if kind == "text":
        config.vocab_size = json.loads((folder / "config.json").read_text())["vocab_size"]
    getattr(transformers, model_name)(config).save_pretrained(folder)
    if kind == "audio":
        transformers.Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(folder)
    if kind == "vision":
        transformers.CLIPImageProcessorPil().save_pretrained(folder)
    return folder


def measure(folder: Path, kind: str, n: int) -> dict:
    """In this process: load the encoder, one warm-up call, then ``n`` utterances."""
    import numpy as np
    import torch

    from selfcross.prepare import encoders

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    if kind == "audio":
        encoder = encoders.load_audio_encoder(folder, device="cpu", batch_size=1)
        item = [rng.normal(0, 0.1, int(SECONDS * 16000)).astype(np.float32)]

        def call():
            return encoder(item)
    elif kind == "text":
        encoder = encoders.load_text_encoder(folder, device="cpu", batch_size=1)

        def call():
            return encoder([" ".join(WORDS)], max_tokens=128)
    else:
        encoder = encoders.load_vision_encoder(folder, device="cpu", batch_size=14)
        frames = rng.integers(0, 256, (int(SECONDS * 3) + 1, 224, 224, 3), dtype=np.uint8)

        def call():
            return encoder(frames)

    call()
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for _ in range(n):
        call()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "cpu_s_per_1000": round(1000 * cpu / n, 1),
        "wall_s_per_1000": round(1000 * (time.perf_counter() - started) / n, 1),
        "peak_rss_mb": round(after.ru_maxrss / 1024),
        "width": encoder.width,
        "utterances": n,
    }


def disk_sizes() -> dict[str, float]:
    """GB of one IEMOCAP fold per feature set (every utterance is in each fold's splits)."""
    import numpy as np

    from selfcross.prepare.writer import fold_layout

    sets = {
        "paper (MFCC 1000x120, GloVe ids 128, ResNet-101 32x2048; float32)":
            ({"A": (1000, 120), "T": (128, 300), "V": (32, 2048)}, ()),
        "wavlm-base 500x768 + roberta-base 128x768 + clip-b/32 32x512 (float16)":
            ({"A": (500, 768), "T": (128, 768), "V": (32, 512)}, ("A", "T", "V")),
        "wavlm-base audio only, 500x768 float16 (paper text and vision)":
            ({"A": (500, 768), "T": (128, 300), "V": (32, 2048)}, ("A",)),
    }  # fmt: skip
    out = {}
    for name, (dims, pretrained) in sets.items():
        shapes = {m: {"seq_len": s, "feat_dim": d} for m, (s, d) in dims.items()}
        layout = fold_layout(shapes, 35, pretrained, "float16")
        row = sum(int(np.prod(shape)) * np.dtype(t).itemsize for shape, t in layout.values())
        out[name] = round(row * IEMOCAP_UTTERANCES / 1e9, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-encoders"))
    parser.add_argument("--utterances", type=int, default=8)
    parser.add_argument("--only", nargs="*", default=list(FAMILIES))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, kind = args.child
        print(json.dumps(measure(Path(folder), kind, args.utterances)))
        return
    for family in args.only:
        kind = FAMILIES[family][0]
        folder = build(args.work / family, family)
        command = [sys.executable, __file__, "--utterances", str(args.utterances),
                   "--child", str(folder), kind]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        result = {"encoder": family, **json.loads(done.stdout.strip().splitlines()[-1])}
        print(json.dumps(result), flush=True)
    print(json.dumps({"disk_gb_per_iemocap_fold": disk_sizes()}))


if __name__ == "__main__":
    main()
