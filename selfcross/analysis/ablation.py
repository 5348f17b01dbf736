"""Missing-modality evaluation of finished runs: ``<run>/ablation.json``, and its scores loaded
for the table (:func:`load_ablations`).

For a run trained on two or three modalities, its configuration is rebuilt from
``result.json``, its best checkpoint is loaded (weights only) and its test split is scored once
per non-empty subset of its modalities, the absent ones blanked (:mod:`selfcross.models.blanking`).
Scoring is the training code's own: the run's ``EmotionRecognizer.test_step`` under a Lightning
``Trainer.test`` (eval mode, the run's device and precision), so WA, UWA and the confusion matrix
come from :mod:`selfcross.models.metrics`. The full set must reproduce ``result.json`` exactly;
otherwise the checkpoint or the data changed, and the run is refused by name.

``ablation.json`` records the checkpoint's SHA-256, the data fingerprint and the run's
``config_hash``/``finished``; a rerun reuses the file while they match and only adds a fill it
lacks. Runs whose checkpoint is gone (``resume.keep_checkpoints``) and that have no matching file
are reported as skipped, and so is a file from a newer selfcross (never overwritten). The
file's keys are :class:`~selfcross.analysis.records.AblationRecord`.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path

from selfcross import MODALITIES
from selfcross.analysis.records import (
    ABLATION_FILE,
    AblationRecord,
    CheckpointRef,
    FillScores,
    NewerSchema,
    SubsetScore,
    read_ablation,
    write_ablation,
)
from selfcross.analysis.reload import best_checkpoint, reload_run
from selfcross.analysis.results import (
    RunResult,
    find_result_files,
    load_results,
    warn_skipped,
)
from selfcross.errors import DataError
from selfcross.training.record import RESULT_FILE, RunRecord, read_record
from selfcross.training.resume import CHECKPOINT_DIR

log = logging.getLogger("selfcross")


def present_subsets(modality: str) -> list[str]:
    """The non-empty subsets of ``modality``, largest first: TVA, TV, TA, VA, T, V, A."""
    letters = [m for m in MODALITIES if m in modality]
    return ["".join(c) for k in range(len(letters), 0, -1) for c in combinations(letters, k)]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class RunAblation:
    """What the ablation did for one run: ``scored``, ``reused`` or ``skipped`` (with why)."""

    run_dir: Path
    status: str
    reason: str = ""


@dataclass
class AblationOutcome:
    runs: list[RunAblation] = field(default_factory=list)
    not_applicable: int = 0
    """Uni-modal runs: nothing to leave out."""

    def with_status(self, status: str) -> list[RunAblation]:
        return [r for r in self.runs if r.status == status]


def ablate_results(directory: Path, fill: str = "zeros") -> AblationOutcome:
    """Ablate every finished multi-modal run under ``directory`` (``result.json`` files, runs
    in ``superseded/`` left out); DataError names the first run that cannot be trusted."""
    outcome = AblationOutcome()
    for path in find_result_files(directory):
        run_dir = path.parent
        record = read_record(path)
        if record is None:
            outcome.runs.append(RunAblation(run_dir, "skipped", f"unreadable {RESULT_FILE}"))
            continue
        if len(present_subsets(str(record.modality))) < 3:
            outcome.not_applicable += 1
            continue
        outcome.runs.append(ablate_run(run_dir, record, fill))
    return outcome


def ablate_run(run_dir: Path, record: RunRecord, fill: str) -> RunAblation:
    """Score one run once per present subset under ``fill`` into ``run_dir/ablation.json``."""
    out = run_dir / ABLATION_FILE
    ckpt = best_checkpoint(run_dir)
    ckpt_sha = sha256_file(ckpt) if ckpt is not None else None
    try:
        found = read_ablation(out)
    except ValueError as err:  # NewerSchema too: never overwritten, set aside if replaced
        problem = str(err) if isinstance(err, NewerSchema) else f"cannot be read ({err})"
        if ckpt is None:
            print(f"warning: {out}: {problem}; left as it is", file=sys.stderr)
            return RunAblation(run_dir, "skipped", f"{ABLATION_FILE} {problem}, and no best "
                               f"checkpoint in {CHECKPOINT_DIR}/ to score the run again (pruned: "
                               "resume.keep_checkpoints)")  # fmt: skip
        aside = out.with_name(f"{ABLATION_FILE}.unusable-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        out.rename(aside)
        print(f"warning: {out}: {problem}; kept as {aside.name}, the run is scored again",
              file=sys.stderr)  # fmt: skip
        found = None
    stored = found if found is not None and found.belongs_to(record, ckpt_sha) else None
    if stored is not None and fill in stored.fills:
        return RunAblation(run_dir, "reused")
    if ckpt is None:
        reason = f"no best checkpoint in {CHECKPOINT_DIR}/ (pruned: resume.keep_checkpoints)" + (
            f", and its {ABLATION_FILE} has no fill={fill}" if found else ""
        )
        return RunAblation(run_dir, "skipped", reason)
    fills = stored.fills if stored is not None else {}
    entries = score_subsets(run_dir, record, fill)
    fills[fill] = FillScores(entries, datetime.now(UTC).isoformat(timespec="seconds"))
    ablation = AblationRecord(
        model=record.model,
        modality=record.modality,
        fold=record.fold,
        seed=record.seed,
        modality_dropout=modality_dropout_of(record.config),
        config_hash=record.config_hash,
        finished=record.finished,
        data_fingerprint=record.data.fingerprint,
        checkpoint=CheckpointRef(str(ckpt.relative_to(run_dir)), ckpt_sha),
        fills=fills,
    )
    write_ablation(run_dir, ablation)
    return RunAblation(run_dir, "scored")


def modality_dropout_of(config: dict) -> float:
    """The run's ``model.modality_dropout`` (0 for runs written before it existed)."""
    model = config.get("model") if isinstance(config, dict) else None
    return float((model or {}).get("modality_dropout", 0.0) or 0.0)


def score_subsets(run_dir: Path, record: RunRecord, fill: str) -> list[SubsetScore]:
    """The entries of ``ablation.json`` for one fill: one per present subset, full set first,
    checked against ``result.json``."""
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader

    from selfcross.data.datamodule import keep_batch
    from selfcross.models.blanking import train_means
    from selfcross.training.experiment import quiet_library_noise
    from selfcross.training.runtime import apply_run_settings

    quiet_library_noise()
    run = reload_run(run_dir, record)
    cfg, datamodule, module = run.cfg, run.datamodule, run.module
    apply_run_settings(module, cfg.get("threads"))
    means = train_means(datamodule, datamodule.modalities) if fill == "train_mean" else None
    trainer = instantiate(
        cfg.trainer,
        default_root_dir=str(run_dir),
        logger=False,
        callbacks=[],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **({"accelerator": "cpu"} if record.device == "cpu" else {}),
    )
    test = datamodule.datasets["test"]
    entries = []
    for present in present_subsets(record.modality):
        absent = [m for m in record.modality if m not in present]
        loader = DataLoader(
            BlankedSplit(test, absent, fill, means),
            batch_size=datamodule.eval_batch_size,
            shuffle=False,
            collate_fn=keep_batch,
        )
        trainer.test(module, dataloaders=loader, verbose=False)
        report = module.test_report
        entries.append(
            SubsetScore(
                present=present,
                absent="".join(absent),
                test_wa=report["wa"],
                test_uwa=report["uwa"],
                test_f1=report["f1"],
                test_loss=report["loss"],
                confusion=report["confusion"],
                test_wf1=report["wf1"],
            )
        )
    check_full_set(run_dir, record, entries[0])
    return entries


def check_full_set(run_dir: Path, record: RunRecord, full: SubsetScore) -> None:
    """DataError unless the full set reproduces ``result.json``'s test metrics exactly."""
    ours = (full.test_wa, full.test_uwa, full.confusion)
    theirs = (record.test_wa, record.test_uwa, record.confusion)
    if ours != theirs:
        raise DataError(
            run_dir,
            f"the full set {full.present} scores WA {full.test_wa!r} UWA "
            f"{full.test_uwa!r}, but {RESULT_FILE} has WA {record.test_wa!r} UWA "
            f"{record.test_uwa!r}"
            + ("" if ours[:2] != theirs[:2] else " and another confusion matrix")
            + ": the checkpoint or the data changed since the run",
        )


@dataclass(frozen=True)
class AblatedRun:
    """One run's scores per present subset: ``scores[present][metric]`` (``wa``, ``uwa``,
    ``mf1``, ``wf1``; None where the file holds no such score)."""

    run: RunResult
    dropout: float
    scores: dict[str, dict[str, float | None]]

    def drop(self, present: str) -> Drop:
        full, here = self.scores[self.run.modality], self.scores[present]
        return Drop({m: None if full[m] is None or here[m] is None else full[m] - here[m]
                     for m in full})  # fmt: skip

    def at(self, present: str) -> Drop:
        return Drop(dict(self.scores[present]))


@dataclass(frozen=True)
class Drop:
    """Values of one run keyed by metric name, as ``report.stats.compare`` reads runs."""

    values: dict[str, float | None]

    def metric(self, name: str) -> float | None:
        return self.values[name]


def load_ablations(
    directory: Path, fill: str
) -> tuple[list[AblatedRun], list[str], list[RunResult]]:
    """The ablated runs under ``directory`` for ``fill``, the skipped multi-modal runs (one
    line each, with the reason), and the uni-modal runs (not applicable)."""
    runs, bad = load_results(directory)
    warn_skipped(bad)
    ablated, skipped, unimodal = [], [f"{b.path}: {b.problem}" for b in bad], []
    for run in runs:
        if len(run.modality) < 2:
            unimodal.append(run)
            continue
        run_dir = run.path.parent
        record = read_record(run.path)
        try:
            stored = read_ablation(run_dir / ABLATION_FILE)
        except ValueError as err:
            problem = err if isinstance(err, NewerSchema) else f"cannot be read ({err})"
            skipped.append(f"{run_dir}: {ABLATION_FILE} {problem}")
            continue
        if stored is None:
            why = "not ablated" if best_checkpoint(run_dir) else "no best checkpoint (pruned)"
            skipped.append(f"{run_dir}: {why}, no {ABLATION_FILE}")
            continue
        if (stored.config_hash, stored.finished) != (record.config_hash, record.finished):
            skipped.append(f"{run_dir}: {ABLATION_FILE} belongs to an earlier run of the folder")
            continue
        if fill not in stored.fills:
            skipped.append(f"{run_dir}: {ABLATION_FILE} has no fill={fill}")
            continue
        try:
            scores = _scores(stored, fill, run.modality)
        except ValueError as err:
            skipped.append(f"{run_dir}: {ABLATION_FILE} is malformed ({err})")
            continue
        ablated.append(AblatedRun(run, modality_dropout_of(record.config), scores))
    return ablated, skipped, unimodal


def _scores(stored: AblationRecord, fill: str, modality: str) -> dict[str, dict[str, float]]:
    """``{present: {metric: value}}`` of one fill; ValueError if a present subset has none."""
    scores = {
        p: {m: None if v is None else float(v) for m, v in s.items()}
        for p, s in stored.scores(fill).items()
    }
    missing = [p for p in present_subsets(modality) if p not in scores]
    if missing:
        raise ValueError(f"no entry for present={missing[0]}")
    return scores


class BlankedSplit:
    """A test split (:class:`~selfcross.data.datamodule.SplitTensors`) whose batches have the
    ``absent`` modalities blanked with ``fill``; every other key passes through unchanged."""

    def __init__(self, split, absent: Sequence[str], fill: str, means=None):
        self.split = split
        self.absent = dict.fromkeys(absent, True)
        self.fill = fill
        self.means = means

    def __len__(self) -> int:
        return len(self.split)

    def __getitems__(self, indices):
        from selfcross.models.blanking import blank

        return blank(self.split.__getitems__(indices), self.absent, self.fill, self.means)
