"""Pretrained Hugging Face encoders as feature extractors (``features=pretrained``,
docs/features.md): speech (WavLM, HuBERT, wav2vec 2.0), text (RoBERTa, BERT) and CLIP-style
vision models, each read from a local folder and run batched on its device.

The function API is per utterance and knows no dataset or cache, so that anything that needs
features of new clips calls it the way preparation does::

    audio = load_audio_encoder("/models/wavlm-base-plus", layer="last")
    frames = audio([samples_16k])[0]            # [T, width] float32, T = audio.frames(len)
    text = load_text_encoder("/models/roberta-base")
    tokens = text(["I am so happy"], max_tokens=128)[0]   # [n_tokens, width]
    vision = load_vision_encoder("/models/clip-vit-base-patch32")
    embeddings = vision(crops)                  # [F, S, S, 3] uint8 -> [F, width]

Nothing is downloaded: a setting that is not a local folder is a one-line error showing the
command that fetches it. ``layer``: ``last`` (the last hidden state), ``mean`` (the mean over
the transformer layers' outputs, ``hidden_states[1:]``) or an index into ``hidden_states``
(0: the input embeddings, 1..L: the layers' outputs).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from selfcross.errors import ConfigError, DataError
from selfcross.prepare.resnet import pick_device

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the hub while preparing
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

SAMPLE_RATE = 16000
"""The speech encoders' input rate (WavLM, HuBERT and wav2vec 2.0 are trained at 16 kHz)."""
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")
FETCH = "hf download {name} --local-dir /models/{tail}"
"""The command that fetches a model from the Hugging Face hub into a local folder."""
PROJECTED = ("CLIPModel", "CLIPVisionModelWithProjection")
"""Vision architectures whose image embedding (the projection) is taken instead of the pooled
output; any other vision model gives its ``pooler_output``."""


def local_folder(value, option: str) -> Path:
    """``value`` as an existing local model folder (holding ``config.json``); anything else is a
    one-line ConfigError naming ``option`` and the command that fetches it."""
    path = Path(str(value)).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise DataError(path, "is not a Hugging Face model folder (no config.json)")
        return path
    tail = str(value).rstrip("/").split("/")[-1] or "model"
    raise ConfigError(
        f"{option}={value}: not a local folder; encoders are read from disk only, fetch it "
        f"first with: {FETCH.format(name=value, tail=tail)} (then {option}=/models/{tail})"
    )


def weights_digest(folder: Path) -> str:
    """SHA-256 (first 16 hex digits) of the folder's weight files, names and bytes, in order:
    two folders with the same weights have the same digest whatever their path."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise DataError(folder, "holds no weight files (model.safetensors or similar)")
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def parse_layer(layer, option: str) -> str | int:
    """``last``, ``mean`` or a non-negative layer index."""
    if layer in ("last", "mean"):
        return layer
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise ConfigError(f"{option}={layer}: expected last, mean or a layer index (0, 1, ...)")
    return layer


def _quiet_transformers():
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def _load_model(folder: Path, cls=None):
    transformers = _quiet_transformers()
    try:
        return (cls or transformers.AutoModel).from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DataError(folder, f"cannot be loaded as a transformers model ({first})") from None


@dataclass
class Encoder:
    """What all three kinds share: the model on its device, and its identity."""

    folder: Path
    model: torch.nn.Module
    device: torch.device
    layer: str | int | None
    width: int
    rate: float | None
    """Feature frames per second (audio), or None (text tokens, vision: one per frame)."""
    batch_size: int
    weights: str = ""
    """:func:`weights_digest` of the folder."""

    def identity(self) -> dict:
        """The feature set of this modality: name, weights digest, layer, width, frame rate."""
        return {
            "encoder": self.folder.name,
            "weights": self.weights,
            "layer": self.layer,
            "width": self.width,
            "rate": self.rate,
        }

    def hidden(self, outputs) -> torch.Tensor:
        """The chosen layer's hidden states [B, T, width]."""
        if self.layer == "last":
            return outputs.last_hidden_state
        states = outputs.hidden_states
        if self.layer == "mean":
            return torch.stack(states[1:]).mean(dim=0)
        return states[self.layer]


def _finish(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    return model.to(device).eval().float()


def _weigh(encoder: Encoder) -> Encoder:
    encoder.weights = weights_digest(encoder.folder)
    return encoder


def _check_layer(layer, n_layers: int, option: str, folder: Path) -> None:
    if isinstance(layer, int) and layer > n_layers:
        raise ConfigError(f"{option}={layer}: {folder.name} has layers 0..{n_layers}")


class AudioEncoder(Encoder):
    """Waveforms at 16 kHz -> frame-level hidden states, one [T, width] array per utterance."""

    extractor = None
    masked: bool = True
    """The feature extractor returns an attention mask (padding is ignored): utterances are
    batched. Models trained without one (wav2vec 2.0 base) see each utterance alone, since
    their group-normalised convolution would read a batch's padding."""

    def frames(self, n_samples: int) -> int:
        """Frames the convolutional feature encoder gives for ``n_samples`` samples."""
        n = n_samples
        for kernel, stride in zip(self.model.config.conv_kernel, self.model.config.conv_stride,
                                  strict=True):  # fmt: skip
            n = (n - kernel) // stride + 1 if n >= kernel else 0
        return max(n, 0)

    def max_samples(self, max_frames: int) -> int:
        """The fewest samples that give ``max_frames`` frames: longer audio is cut to this before
        the encoder (the caps bound the work, not only the stored frames)."""
        field, step = 1, 1
        for kernel, stride in zip(self.model.config.conv_kernel, self.model.config.conv_stride,
                                  strict=True):  # fmt: skip
            field += (kernel - 1) * step
            step *= stride
        return (max_frames - 1) * step + field

    @torch.inference_mode()
    def __call__(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        size = self.batch_size if self.masked else 1
        for start in range(0, len(waves), size):
            batch = [np.asarray(w, np.float32) for w in waves[start : start + size]]
            inputs = self.extractor(
                batch, sampling_rate=SAMPLE_RATE, padding=True, return_tensors="pt",
                return_attention_mask=self.masked,
            )  # fmt: skip
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            states = self.hidden(self.model(**inputs, output_hidden_states=True))
            for row, wave in enumerate(batch):
                n = min(self.frames(len(wave)), states.shape[1])
                out.append(states[row, :n].float().cpu().numpy())
        return out


class TextEncoder(Encoder):
    """Transcripts -> token-level hidden states with the encoder's own tokenizer."""

    tokenizer = None

    @torch.inference_mode()
    def __call__(self, texts: list[str], max_tokens: int) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [str(t) for t in texts[start : start + self.batch_size]]
            inputs = self.tokenizer(batch, padding=True, truncation=True, max_length=max_tokens,
                                    return_tensors="pt")  # fmt: skip
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            states = self.hidden(self.model(**inputs, output_hidden_states=True))
            lengths = inputs["attention_mask"].sum(dim=1).tolist()
            for row, n in enumerate(lengths):
                out.append(states[row, : int(n)].float().cpu().numpy())
        return out


class VisionEncoder(Encoder):
    """Frames [F, S, S, 3] uint8 -> one embedding per frame, [F, width] float32: a CLIP model's
    image embedding (its projection), or another vision model's pooled output."""

    processor = None
    projected: str | None = None

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray) -> np.ndarray:
        out = np.empty((len(crops), self.width), np.float32)
        for start in range(0, len(crops), self.batch_size):
            batch = list(crops[start : start + self.batch_size])
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            out[start : start + len(batch)] = self.embed(pixels.to(self.device)).cpu().numpy()
        return out

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.projected == "CLIPModel":
            return self.model.get_image_features(pixel_values=pixels).pooler_output.float()
        outputs = self.model(pixel_values=pixels)
        if self.projected == "CLIPVisionModelWithProjection":
            return outputs.image_embeds.float()
        return outputs.pooler_output.float()


def load_audio_encoder(folder, layer="last", device="auto", batch_size: int = 8,
                       option: str = "audio.encoder") -> AudioEncoder:  # fmt: skip
    """A speech encoder (any ``transformers`` model of the wav2vec 2.0 family) and its feature
    extractor, from a local folder."""
    path = local_folder(folder, option)
    transformers = _quiet_transformers()
    layer = parse_layer(layer, option.replace("encoder", "layer"))
    model = _load_model(path)
    config = model.config
    if not hasattr(config, "conv_kernel") or not hasattr(config, "conv_stride"):
        raise DataError(path, f"{type(model).__name__} is not a speech encoder of the wav2vec 2.0 "
                              "family (WavLM, HuBERT, wav2vec 2.0)")  # fmt: skip
    _check_layer(layer, config.num_hidden_layers, option.replace("encoder", "layer"), path)
    torch_device = pick_device(device, option.replace("encoder", "device"))
    step = int(np.prod(config.conv_stride))
    encoder = AudioEncoder(path, _finish(model, torch_device), torch_device, layer,
                           int(config.hidden_size), SAMPLE_RATE / step, batch_size)  # fmt: skip
    encoder.extractor = transformers.AutoFeatureExtractor.from_pretrained(
        path, local_files_only=True
    )
    encoder.masked = bool(getattr(encoder.extractor, "return_attention_mask", False))
    return _weigh(encoder)


def load_text_encoder(folder, layer="last", device="auto", batch_size: int = 32,
                      option: str = "text.encoder") -> TextEncoder:  # fmt: skip
    """A text encoder (RoBERTa, BERT, ...) and its tokenizer, from a local folder."""
    path = local_folder(folder, option)
    transformers = _quiet_transformers()
    layer = parse_layer(layer, option.replace("encoder", "layer"))
    model = _load_model(path)
    _check_layer(layer, model.config.num_hidden_layers, option.replace("encoder", "layer"), path)
    torch_device = pick_device(device, option.replace("encoder", "device"))
    encoder = TextEncoder(path, _finish(model, torch_device), torch_device, layer,
                          int(model.config.hidden_size), None, batch_size)  # fmt: skip
    encoder.tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    return _weigh(encoder)


def load_vision_encoder(folder, device="auto", batch_size: int = 32,
                        option: str = "vision.encoder") -> VisionEncoder:  # fmt: skip
    """A CLIP-style vision encoder and its image processor (PIL backend: torchvision is never
    loaded), from a local folder."""
    import json

    path = local_folder(folder, option)
    transformers = _quiet_transformers()
    architectures = json.loads((path / "config.json").read_text()).get("architectures") or []
    projected = next((a for a in architectures if a in PROJECTED), None)
    model = _load_model(path, getattr(transformers, projected) if projected else None)
    torch_device = pick_device(device, option.replace("encoder", "device"))
    encoder = VisionEncoder(path, _finish(model, torch_device), torch_device, None, 0, None,
                            batch_size)  # fmt: skip
    encoder.projected = projected
    encoder.processor = transformers.AutoImageProcessor.from_pretrained(
        path, local_files_only=True, backend="pil"
    )
    with torch.inference_mode():
        size = encoder.processor.crop_size or encoder.processor.size
        side = int(size.get("height") or size.get("shortest_edge") or 224)
        probe = torch.zeros(1, 3, side, side, device=torch_device)
        encoder.width = int(encoder.embed(probe).shape[-1])
    return _weigh(encoder)
