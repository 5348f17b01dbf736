"""ResNet-101 as a frame feature extractor, with torchvision's parameter names.

torchvision cannot be imported next to this project's CPU build of torch, so the network is
written here: bottleneck blocks (stride on the 3x3 convolution), layers [3, 4, 23, 3], and the
same module names as ``torchvision.models.resnet101``, so that torchvision's ImageNet weights file
(``resnet101-*.pth``, a plain state dict) loads with ``strict=True``. The classifier ``fc`` is kept
only so that the state dict matches; :meth:`ResNet101.forward` returns the global-pooled 2048-D
features that precede it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from selfcross.errors import ConfigError, DataError
from selfcross.prepare.extract import FEATURE_DIM

log = logging.getLogger(__name__)

LAYERS = (3, 4, 23, 3)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4; identity or projected shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)


class ResNet101(nn.Module):
    """[B, 3, H, W] uint8-range RGB -> [B, 2048] global-pooled features.

    ImageNet normalisation is part of the module (non-persistent buffers, so the state dict
    holds exactly torchvision's keys).
    """

    def __init__(self, layers: tuple[int, ...] = LAYERS, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for i, (blocks, width) in enumerate(zip(layers, (64, 128, 256, 512), strict=True)):
            stride = 1 if i == 0 else 2
            stage = []
            for b in range(blocks):
                stage.append(Bottleneck(in_channels, width, stride if b == 0 else 1))
                in_channels = width * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self.set_normalisation()

    def set_normalisation(self, device=None) -> None:
        """ImageNet mean and std as non-persistent buffers (not in the state dict)."""
        for name, values in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD)):
            tensor = torch.tensor(values, device=device).view(1, 3, 1, 1)
            self.register_buffer(name, tensor, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() / 255.0 - self.mean) / self.std
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (first 16 hex digits): names the weights in cache keys."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def load_resnet101(weights: str | Path | None, seed: int = 0) -> ResNet101:
    """The network in eval mode with the user's torchvision weights, or seeded random weights.

    ``weights=None`` means random weights: the caller must have asked for them explicitly.
    """
    if weights is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = ResNet101()
        return model.eval()
    path = Path(weights)
    if not path.is_file():
        raise DataError(path, "ResNet-101 weights file is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a bad file
        raise DataError(path, f"cannot be read as a torch state dict ({err})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(path, "is not a plain state dict of tensors (torchvision's format)")
    with torch.device("meta"):  # no random initialisation: every parameter is loaded
        model = ResNet101()
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        missing = sorted(set(model.state_dict()) - set(state))
        unexpected = sorted(set(state) - set(model.state_dict()))
        detail = (
            f"missing {len(missing)} keys (e.g. {missing[:2]}), unexpected {len(unexpected)} "
            f"(e.g. {unexpected[:2]})"
            if missing or unexpected
            else str(err).splitlines()[-1].strip()
        )
        raise DataError(path, f"is not torchvision's resnet101 state dict: {detail}") from None
    model.set_normalisation(device="cpu")
    return model.float().eval()


def pick_device(name: str, option: str = "vision.device") -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU; ``option`` names the
    setting in the error (every extractor's ``*.device`` is read here)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"{option}={name}: not a torch device (auto, cpu, cuda, cuda:1)"
        ) from None


class FrameEncoder:
    """Crops [F, S, S, 3] uint8 -> ResNet-101 features [F, 2048] float32, in batches."""

    def __init__(
        self,
        model: ResNet101,
        device: torch.device,
        batch_size: int = 32,
        cpu_threads: int | None = None,
    ):
        self.device = device
        self.model = model.to(device).eval()
        self.batch_size = batch_size
        self.cpu_threads = cpu_threads

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray) -> np.ndarray:
        out = np.empty((len(crops), FEATURE_DIM), np.float32)
        threads = torch.get_num_threads()
        if self.cpu_threads:
            torch.set_num_threads(self.cpu_threads)
        try:
            for start in range(0, len(crops), self.batch_size):
                batch = torch.from_numpy(crops[start : start + self.batch_size]).to(self.device)
                features = self.model(batch.permute(0, 3, 1, 2))
                out[start : start + len(batch)] = features.float().cpu().numpy()
        finally:
            torch.set_num_threads(threads)
        return out
