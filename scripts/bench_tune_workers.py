"""Wall time of one small study with 1, 2 and 4 workers on a throwaway PostgreSQL server, and
the database's overhead per trial (docs/tuning.md, "Cost").

    python scripts/bench_tune_workers.py [--workers 1 2 4] [--trials 8] [--epochs 2]

Needs root (the server runs as ``nobody``, scripts/postgres-local.sh). Each study: Cross on T+A,
the tiny synthetic preset, fold 1, ``--trials`` trials of one run of ``--epochs`` epochs; the
synthetic fold is generated before the first timing. The overhead per trial is the time of the
storage calls a worker makes around a trial (ask, its user attributes, tell, reading the trials
for the count and best.json), without training, on PostgreSQL and on the study folder's SQLite.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "postgres-local.sh"


def tune(study: Path, data: Path, url: str, workers: int, trials: int, epochs: int) -> float:
    cmd = [sys.executable, "-m", "selfcross.tune", "model=cross", "modality=TA",
           f"paths.data_dir={data}", "data.preset=tiny", f"trainer.max_epochs={epochs}",
           "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false",
           "trainer.accelerator=cpu", "tune.folds=[1]", f"tune.n_trials={trials}",
           f"hydra.sweep.dir={study}", f"tune.storage='{url}'",
           f"tune.workers={workers}"]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - started


def overhead(storage, n: int = 40) -> float:
    """Seconds of storage calls per trial, without training."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=f"overhead-{time.time_ns()}",
                                direction="maximize")  # fmt: skip
    started = time.perf_counter()
    for i in range(n):
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        trial.set_user_attr("values", {"lr": 0.001})
        trial.set_user_attr("fold_scores", {"1": 0.5})
        study.tell(trial, 0.5 + i * 1e-3)
        study.get_trials(deepcopy=False)  # the count
        study.get_trials(deepcopy=False)  # best.json
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-tune-"))
    os.chmod(tmp, 0o755)
    env = {**os.environ, "PG_LOCAL_DIR": str(tmp / "pg")}
    url = subprocess.run([str(SCRIPT), "start"], env=env, check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]  # fmt: skip
    try:
        data = tmp / "data"
        tune(tmp / "warm", data, url, 1, 1, 1)  # generates the fold, warms the caches
        print(f"{os.cpu_count()} cores; {args.trials} trials, {args.epochs} epochs, tiny preset")
        for n in args.workers:
            seconds = tune(tmp / f"w{n}", data, url, n, args.trials, args.epochs)
            print(f"workers={n}: {seconds:.1f} s wall ({seconds / args.trials:.2f} s per trial)")
        import optuna

        pg = overhead(optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180))
        lite = overhead(optuna.storages.RDBStorage(f"sqlite:///{tmp / 'overhead.db'}"))
        print(f"storage calls per trial: PostgreSQL {pg * 1000:.0f} ms, "
              f"SQLite {lite * 1000:.0f} ms")  # fmt: skip
    finally:
        subprocess.run([str(SCRIPT), "clean"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
