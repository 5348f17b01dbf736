"""Latency of one prediction on this CPU (docs/using-models.md): features + network.

    nice .venv/bin/python scripts/latency_predict.py [--repeats 10] [--seconds 3.6]

Features of one clip, each by preparation's own code at the paper's settings: MFCCs of a
``--seconds`` clip's audio track (H.264 320 x 180 + AAC, written by the fake MELD kit),
ResNet-101 (random weights: the same arithmetic as ImageNet's) over its frames sampled at 3 per
second and scaled to 224 x 224, and the transcript's tokens looked up in a 300-D vocabulary.
Then the network of every model of conf/model on every modality subset it accepts, at the paper's
shapes (text 128 x 300, video 32 x 2048, audio 1000 x 120), batch 1, untrained weights. Each
number is the median of ``--repeats`` calls after one warm-up; a measurement, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def median_seconds(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3.6, help="clip length (MELD's mean)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from selfcross import fusion_problem
    from selfcross.config import compose
    from selfcross.models.networks import EmotionNet
    from selfcross.prepare.audio import AudioSettings
    from selfcross.prepare.extract import compute_audio
    from selfcross.prepare.resnet import FrameEncoder, load_resnet101
    from selfcross.prepare.text import tokenize
    from selfcross.prepare.video import WHOLE, FrameSettings, sample_times, video_frames
    from tests.helpers.meldkit import write_clip
    from tests.helpers.modelkit import MODELS, architecture

    torch.set_num_threads(1)  # one core: the machine is shared; a second would be contended
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_clip(clip, args.seconds, seed=0, size=(320, 180))
        audio = median_seconds(lambda: compute_audio(clip, AudioSettings()), args.repeats)
        frames = FrameSettings(region=WHOLE)
        encoder = FrameEncoder(load_resnet101(None), torch.device("cpu"))
        times = sample_times(0.0, args.seconds, frames.fps)

        def video():
            (crops,) = video_frames(clip, [(times, WHOLE)], frames)
            return encoder(crops)

        video_s = median_seconds(video, max(1, args.repeats // 3))
    rng = np.random.default_rng(0)
    vocab = {f"w{i}": i for i in range(5000)}
    table = rng.normal(size=(5000, 300)).astype(np.float32)
    words = "i can't believe you did that, it is so unlike you".split()

    def text():
        tokens = tokenize(" ".join(words))
        return table[[vocab.get(t, 0) for t in tokens]]

    text_s = median_seconds(text, args.repeats)
    features = {"T": text_s, "V": video_s, "A": audio}
    print(f"features: text {1e3 * text_s:.2f} ms, video {1e3 * video_s:.0f} ms "
          f"({len(times)} frames), audio {1e3 * audio:.1f} ms ({args.seconds} s clip); "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    shapes = compose(["data=iemocap", "data.root=/unused"]).data.shapes
    shapes = {m: dict(shapes[m]) for m in "TVA"}
    subsets = ["".join(c) for k in (3, 2, 1) for c in combinations("TVA", k)]
    print("| model | modalities | network (ms) | features + network (ms) |")
    print("|---|---|---:|---:|")
    for model in MODELS:
        arch = architecture(model)
        for subset in subsets:
            if fusion_problem(arch["fusion"], subset) is not None:
                continue
            net = EmotionNet(subset, shapes, num_classes=4, **arch).eval()
            batch = {
                m: torch.randn(1, shapes[m]["seq_len"], shapes[m]["feat_dim"]) for m in subset
            }

            def forward(net=net, batch=batch):
                with torch.inference_mode():
                    net(batch)

            network = median_seconds(forward, args.repeats)
            total = network + sum(features[m] for m in subset)
            print(f"| {model} | {subset} | {1e3 * network:.1f} | {1e3 * total:.0f} |")


if __name__ == "__main__":
    main()
