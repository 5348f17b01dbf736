"""Tiny randomly initialised Hugging Face encoders of each family, saved into local folders
(``save_pretrained``), for ``features=pretrained`` tests: nothing comes from outside."""

from __future__ import annotations

from pathlib import Path

import torch

SPEECH = ("wavlm", "hubert", "wav2vec2")
TEXT = ("roberta", "bert")
VISION = ("clip_vision", "clip")
WIDTH = 16
"""hidden_size of every tiny encoder (CLIP's projection: PROJECTION)."""
PROJECTION = 12
LAYERS = 2
WORDS = (
    "hello", "i", "don't", "know", "what", "you", "mean", "why", "are", "so", "angry", "tell",
    "me", "this", "is", "great", "news", "happy", "for", "well", "okay", "fine", "not", "a",
    "word", "sad", "calm", "joy", "anger", "fear", "neutral", "surprise", "disgust", "excited",
    "frustrated", "oh", "no", "yes", "really", "what", "the", "it", "was", "we", "can", "go",
)  # fmt: skip


def speech_config(family: str, seed: int = 0):
    import transformers

    config_class = {
        "wavlm": transformers.WavLMConfig,
        "hubert": transformers.HubertConfig,
        "wav2vec2": transformers.Wav2Vec2Config,
    }[family]
    return config_class(
        hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=2,
        intermediate_size=32, conv_dim=(8, 8, 8), conv_stride=(5, 8, 8),
        conv_kernel=(10, 8, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer", do_stable_layer_norm=True,
    )  # fmt: skip


def save_speech(folder: Path, family: str, seed: int = 0) -> Path:
    """A tiny speech encoder at WavLM's rate (50 frames per second: a stride of 5 * 8 * 8 = 320
    samples at 16 kHz)."""
    import transformers

    model_class = {
        "wavlm": transformers.WavLMModel,
        "hubert": transformers.HubertModel,
        "wav2vec2": transformers.Wav2Vec2Model,
    }[family]
    torch.manual_seed(seed)
    model_class(speech_config(family)).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=True, return_attention_mask=True
    ).save_pretrained(folder)
    return folder


def save_text(folder: Path, family: str, seed: int = 0) -> Path:
    """A tiny text encoder with a word-level tokenizer built here from WORDS."""
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    if family == "roberta":
        special = {"pad": "<pad>", "unk": "<unk>", "cls": "<s>", "sep": "</s>", "mask": "<mask>"}
    else:
        special = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]",
                   "mask": "[MASK]"}  # fmt: skip
    vocab = {token: i for i, token in enumerate([*special.values(), *dict.fromkeys(WORDS)])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=special["unk"]))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    cls, sep = special["cls"], special["sep"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])]
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, **{f"{k}_token": v for k, v in special.items()}
    )
    fast.save_pretrained(folder)
    sizes = dict(vocab_size=len(vocab), hidden_size=WIDTH, num_hidden_layers=LAYERS,
                 num_attention_heads=2, intermediate_size=32, max_position_embeddings=80,
                 pad_token_id=vocab[special["pad"]])  # fmt: skip
    torch.manual_seed(seed)
    if family == "roberta":
        transformers.RobertaModel(transformers.RobertaConfig(**sizes)).save_pretrained(folder)
    else:
        transformers.BertModel(transformers.BertConfig(**sizes)).save_pretrained(folder)
    return folder


def save_vision(folder: Path, family: str, seed: int = 0) -> Path:
    """A tiny CLIP vision tower with its projection (``clip_vision``) or a whole CLIP model
    (``clip``), and an image processor at 32 x 32."""
    import transformers

    vision = dict(hidden_size=WIDTH, intermediate_size=32, num_hidden_layers=LAYERS,
                  num_attention_heads=2, image_size=32, patch_size=8,
                  projection_dim=PROJECTION)  # fmt: skip
    torch.manual_seed(seed)
    if family == "clip":
        text = dict(vocab_size=64, hidden_size=WIDTH, intermediate_size=32,
                    num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                    bos_token_id=0, eos_token_id=1, pad_token_id=1)  # fmt: skip
        config = transformers.CLIPConfig(
            text_config=text, vision_config=vision, projection_dim=PROJECTION
        )
        transformers.CLIPModel(config).save_pretrained(folder)
    else:
        config = transformers.CLIPVisionConfig(**vision)
        transformers.CLIPVisionModelWithProjection(config).save_pretrained(folder)
    transformers.CLIPImageProcessorPil(  # the PIL backend: torchvision is not needed
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    return folder


def save_all(root: Path) -> dict[str, Path]:
    """Every family under ``root/<family>``; returns family -> folder."""
    folders = {}
    for family in SPEECH:
        folders[family] = save_speech(root / family, family)
    for family in TEXT:
        folders[family] = save_text(root / family, family)
    for family in VISION:
        folders[family] = save_vision(root / family, family)
    return folders


def perturb(source: Path, target: Path, seed: int = 1) -> Path:
    """A copy of the model folder ``source`` whose weights are re-drawn with another seed."""
    import json
    import shutil

    shutil.copytree(source, target)
    architecture = json.loads((source / "config.json").read_text())["architectures"][0]
    import transformers

    model = getattr(transformers, architecture).from_pretrained(source)
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.save_pretrained(target)
    return target
