"""The ``README.md`` model card of an exported model folder, in the Hugging Face layout (YAML
metadata, then prose): what it predicts, its training data and protocol, its test scores from
``result.json``, its size, intended use, limitations and the data's licence terms."""

from __future__ import annotations

MODALITY_NAMES = {"T": "text (transcript)", "V": "video (frames)", "A": "audio (speech)"}
DATASET_TERMS = {
    "iemocap": "IEMOCAP is released by USC SAIL under a licence for academic research only; "
    "redistributing its data is not allowed. Models trained on it may carry these terms: check "
    "them before any other use.",
    "meld": "MELD is released under GPL-3.0 and its clips come from the TV series Friends; "
    "check both before any use beyond research.",
}


def _score(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def model_card(model, config: dict) -> str:
    record, inputs = model.record, model.inputs
    dataset = record.data.name
    modalities = ", ".join(MODALITY_NAMES[m] for m in inputs.modalities)
    recall = record.test_recall or {}
    recall_rows = "\n".join(f"| {name} | {_score(recall.get(name))} |"
                            for name in inputs.class_names)  # fmt: skip
    terms = DATASET_TERMS.get(dataset, "The training data's own licence applies to this model.")
    words = config.get("word_vectors")
    frames = config.get("frame_encoder")
    needs = []
    if words:
        needs.append(f"the word vectors the run was prepared with (GloVe; the vocabulary's "
                     f"{words['vocabulary_size']} rows have SHA-256 "
                     f"`{words['vocabulary_rows_sha256']}`)")  # fmt: skip
    if frames:
        needs.append(f"the frame encoder's weights (ResNet-101, SHA-256 prefix "
                     f"`{frames['weights_sha256_prefix']}`)")  # fmt: skip
    needed = "; ".join(needs) or "nothing beyond this folder"
    lengths = ", ".join(f"{m}: {inputs.shapes[m]['seq_len']} x {inputs.shapes[m]['feat_dim']}"
                        for m in inputs.modalities)  # fmt: skip
    return f"""---
license: other
library_name: onnx
tags:
- emotion-recognition
- multimodal
- selfcross
datasets:
- {dataset}
metrics:
- recall
- accuracy
- f1
---

# selfcross {model.name} ({"".join(inputs.modalities)}) emotion classifier

Predicts one of {len(inputs.class_names)} emotion classes
({", ".join(inputs.class_names)}) for one utterance from its {modalities}.
Architecture `{model.name}` of selfcross (fusion `{config["network"].get("fusion")}`, pooling
`{config["network"].get("pooling")}`), {config["n_params"]:,} parameters.

## Files

- `model.onnx`: the network (opset {config["onnx"]["opset"]}), inputs {lengths} per utterance
  with a dynamic batch axis; output `logits`. ONNX Runtime's logits matched PyTorch's on the
  run's test split within {config["onnx"]["checked"]["tolerance"]:g} (largest difference
  {config["onnx"]["checked"]["max_abs_diff"]:.1e}).
- `model.safetensors`: the same weights for PyTorch (`selfcross.models.EmotionNet`).
- `config.json`: the network's settings, the feature settings, the audio standardisation
  statistics of the training split, the class names and the modalities.

Predict with `python -m selfcross.predict <this folder> --clip clip.mp4 --text "..."`; it
needs {needed}.

## Training data and protocol

Dataset `{dataset}`, fold {record.fold}, seed {record.seed}; trained
{record.epochs} epochs, tested at the best-validation epoch {record.best_epoch}.
Test scores (WA: mean per-class recall; UWA: accuracy; F1: macro):

| metric | value |
|---|---|
| WA | {_score(record.test_wa)} |
| UWA | {_score(record.test_uwa)} |
| F1 | {_score(record.test_f1)} |

Per-class recall on the test split:

| class | recall |
|---|---|
{recall_rows}

## Intended use and limitations

For research on multimodal emotion recognition, on clips like those it was trained on: acted
or scripted English dialogue, one speaker per utterance. Not for decisions about people. Its
scores come from one fold and one seed; acted emotions differ from spontaneous ones, and the
classes and their balance are those of `{dataset}`.

## Licence

{terms}
"""
