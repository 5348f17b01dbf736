"""Where preparation's extractors run: ``*.device`` (auto, cpu, cuda, cuda:N)."""

from __future__ import annotations

import pytest
import torch

from selfcross.errors import ConfigError
from selfcross.prepare.resnet import pick_device


def test_auto_is_the_gpu_when_there_is_one_else_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto", "audio.device") == torch.device("cuda")
    assert pick_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize("option", ["vision.device", "audio.device", "text.device"])
def test_a_bad_device_is_one_line_naming_its_setting(option):
    with pytest.raises(ConfigError) as err:
        pick_device("gpu0", option)
    assert str(err.value) == f"{option}=gpu0: not a torch device (auto, cpu, cuda, cuda:1)"
