# selfcross: the front door. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

# Sweeps and tables: `make table1 DATA=iemocap DATA_ROOT=/path/to/folds LAUNCHER=local_gpus`
# (FOLDS defaults to the n_folds of DATA_ROOT's manifest, dataset.json, else of conf/data/$(DATA).yaml:
# DATA=meld has one fold)
DATA ?= synthetic
DATA_ROOT ?=
PRESET ?= small
ROOT_FOLDS := $(if $(DATA_ROOT),$(shell [ -f "$(DATA_ROOT)/dataset.json" ] && [ -x $(PY) ] && $(PY) -c 'import sys; from selfcross.manifest import root_n_folds; print(root_n_folds(sys.argv[1], 0))' "$(DATA_ROOT)" 2>/dev/null))
# The sweep folders' suffix for DATA_ROOT's evaluation scheme (-session, -4class; empty for the paper's)
ROOT_SCHEME := $(if $(DATA_ROOT),$(shell [ -f "$(DATA_ROOT)/dataset.json" ] && [ -x $(PY) ] && $(PY) -c 'import sys; from selfcross.manifest import scheme_suffix; print(scheme_suffix(sys.argv[1]))' "$(DATA_ROOT)" 2>/dev/null))
N_FOLDS := $(or $(ROOT_FOLDS),$(shell sed -n 's/^n_folds: *\([0-9]*\).*/\1/p' conf/data/$(DATA).yaml 2>/dev/null),5)
FOLDS ?= $(shell seq -s, 1 $(N_FOLDS))
SEEDS ?= 1,2,3,4,5,6,7,8,9,10
LAUNCHER ?= basic
OUT ?= tables
FIG_FOLD ?= 1
# Tuning (docs/tuning.md): `make tune MODEL=cross MODALITY=TA TRIALS=40`; TUNE_ARGS= adds overrides
MODEL ?= cross
MODALITY ?= TA
TRIALS ?= 40
TUNE_ARGS ?=
TUNE_CELLS := self-TV cross-TV self-TA cross-TA self-VA cross-VA
FILL ?= zeros
ifeq ($(DATA),synthetic)
  DATA_ARGS := data=$(DATA) data.preset=$(PRESET)
  LABEL := $(DATA)-$(PRESET)
else
  DATA_ARGS := data=$(DATA) data.root=$(DATA_ROOT)
  LABEL := $(DATA)
endif
SWEEP ?= paper-$(LABEL)$(ROOT_SCHEME)
SWEEP_BASE = $(DATA_ARGS) hydra/launcher=$(LAUNCHER) sweep_name=$(SWEEP)
SWEEP_ARGS = $(SWEEP_BASE) fold=$(FOLDS) seed=$(SEEDS)
TABLE_ARGS = --results multirun/$(SWEEP) --out $(OUT) --folds $(FOLDS) --seeds $(SEEDS)

.DEFAULT_GOAL := help

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install selfcross with the tested versions (done once)

run: $(STAMP) ## Train and test the default experiment (tri-modal self, synthetic data); ARGS= adds overrides
	$(PY) -m selfcross.run $(ARGS)

test: $(STAMP) ## Run the test suite (fast tests; slow, SLURM and faults ones are deselected)
	$(PY) -m pytest -m "not slow and not slurm and not faults and not postgres" $(ARGS)

test-faults: $(STAMP) ## Full disks on a small tmpfs (root: mounts one) and signals in the other commands' phases (CI runs it)
	$(PY) -m pytest -m faults $(ARGS)

# A suite that collects no test fails (pytest exit status 5): CI never passes on nothing.
test-slurm: $(STAMP) ## Sweeps on a throwaway local SLURM cluster (root; SELFCROSS_SLURM_INSTALL=1 apt-gets it)
	$(PY) -m pytest -m slurm $(ARGS)

test-postgres: $(STAMP) ## Tuning workers on a throwaway PostgreSQL server (root; SELFCROSS_POSTGRES_INSTALL=1 apt-gets it)
	$(PY) -m pytest -m postgres $(ARGS)

test-full: $(STAMP) ## Run every test, slow ones included
	$(PY) -m pytest $(ARGS)

check: $(STAMP) ## Check every fold of the data (DATA=iemocap DATA_ROOT=...) without training
	$(PY) -m selfcross.check $(DATA_ARGS) $(ARGS)

table1: $(STAMP) ## Run the Table 1 sweep (finished runs are skipped) and build tables/table1.*
	$(PY) -m selfcross.run -m experiment=table1 $(SWEEP_ARGS) $(ARGS)
	$(PY) -m selfcross.tables table1 $(TABLE_ARGS)

table2: $(STAMP) ## Run the Table 2 sweep (finished runs are skipped) and build tables/table2.*
	$(PY) -m selfcross.run -m experiment=table2 $(SWEEP_ARGS) $(ARGS)
	$(PY) -m selfcross.tables table2 $(TABLE_ARGS)

table3: $(STAMP) ## Run the Table 3 sweep (transformer layers vs bare attention) and build tables/table3.*
	$(PY) -m selfcross.run -m experiment=table3 $(SWEEP_ARGS) $(ARGS)
	$(PY) -m selfcross.tables table3 $(TABLE_ARGS)

figure3: $(STAMP) ## Run tri-modal Self and Cross on fold FIG_FOLD and draw tables/figure3.png
	$(PY) -m selfcross.run -m experiment=table2 model=self,cross $(SWEEP_BASE) fold=$(FIG_FOLD) seed=$(SEEDS) $(ARGS)
	$(PY) -m selfcross.tables figure3 --results multirun/$(SWEEP) --out $(OUT) --fold $(FIG_FOLD) --seeds $(SEEDS)

demo: $(STAMP) ## A reduced Table 1 on synthetic data (fold 1, seeds 1-2, <= 6 epochs) and Figure 3
	$(PY) -m selfcross.run -m experiment=demo $(ARGS)
	$(PY) -m selfcross.tables table1 --results multirun/demo --out $(OUT) --folds 1 --seeds 1,2
	$(PY) -m selfcross.tables figure3 --results multirun/demo --out $(OUT) --fold 1 --seeds 1,2

masking: $(STAMP) ## Masked vs unmasked padding: tri-modal Self and Cross sweep and tables/masking.*
	$(PY) -m selfcross.run -m experiment=mask_padding $(DATA_ARGS) hydra/launcher=$(LAUNCHER) sweep_name=mask_padding-$(LABEL)$(ROOT_SCHEME) fold=$(FOLDS) seed=$(SEEDS) $(ARGS)
	$(PY) -m selfcross.tables masking --results multirun/mask_padding-$(LABEL)$(ROOT_SCHEME) --out $(OUT) --folds $(FOLDS) --seeds $(SEEDS)

demo-attention: $(STAMP) ## A reduced masking sweep (8 runs, 6 epochs), its table and the attention maps of two runs
	$(PY) -m selfcross.run -m experiment=demo_attention $(ARGS)
	$(PY) -m selfcross.tables masking --results multirun/demo_attention --out $(OUT) --folds 1 --seeds 1,2
	$(PY) -m selfcross.attention multirun/demo_attention/cross/TVA/mask_padding-False/fold1/seed1
	$(PY) -m selfcross.attention multirun/demo_attention/cross/TVA/mask_padding-True/fold1/seed1

# Table 5: one data root per scheme (docs/protocols.md). The random block reuses Table 1's runs
# (its sweep folder, paper-iemocap); the 4-class block reads the random folds with class_set=4class.
ROOT_RANDOM ?= $(DATA_ROOT)
ROOT_4CLASS ?= $(ROOT_RANDOM)
ROOT_SESSION ?=
ROOT_MELD ?=
T5_FOLDS ?= 1,2,3,4,5
T5_RUN = $(PY) -m selfcross.run -m experiment=table5 hydra/launcher=$(LAUNCHER) seed=$(SEEDS) $(ARGS)

table5: $(STAMP) ## Table 5: Self vs Cross per protocol (ROOT_RANDOM= ROOT_SESSION= ROOT_MELD= [ROOT_4CLASS=]) and cross-corpus
	@test -n "$(ROOT_RANDOM)" -a -n "$(ROOT_SESSION)" -a -n "$(ROOT_MELD)" || { echo "error: set ROOT_RANDOM, ROOT_SESSION and ROOT_MELD (docs/protocols.md)" >&2; exit 2; }
	$(T5_RUN) data=iemocap data.root=$(ROOT_RANDOM) fold=$(T5_FOLDS) sweep_name=paper-iemocap
	$(T5_RUN) data=iemocap data.root=$(ROOT_4CLASS) class_set=4class fold=$(T5_FOLDS) sweep_name=table5-4class
	$(T5_RUN) data=iemocap data.root=$(ROOT_SESSION) fold=$(T5_FOLDS) sweep_name=table5-session
	$(T5_RUN) data=meld data.root=$(ROOT_MELD) fold=1 sweep_name=table5-meld
	$(PY) -m selfcross.evaluate multirun/paper-iemocap data=meld data.root=$(ROOT_MELD) class_map=iemocap_meld
	$(PY) -m selfcross.evaluate multirun/table5-meld data=iemocap data.root=$(ROOT_RANDOM) class_map=meld_iemocap
	$(PY) -m selfcross.tables table5 --results multirun/table5 --block random=multirun/paper-iemocap --out $(OUT) --seeds $(SEEDS)

demo5: $(STAMP) ## A reduced Table 5 on synthetic data (4 schemes x 8 runs, <= 3 epochs) with cross-corpus scores
	$(PY) -m selfcross.run -m experiment=demo5 data=synthetic sweep_name=demo5-random $(ARGS)
	$(PY) -m selfcross.run -m experiment=demo5 data=iemocap 'data.root=$${paths.data_dir}/synthetic/small' class_set=4class sweep_name=demo5-4class $(ARGS)
	$(PY) -m selfcross.run -m experiment=demo5 data=synthetic_session sweep_name=demo5-session $(ARGS)
	$(PY) -m selfcross.run -m experiment=demo5 data=synthetic_meld sweep_name=demo5-meld $(ARGS)
	$(PY) -m selfcross.evaluate multirun/demo5-random data=synthetic_meld class_map=iemocap_meld
	$(PY) -m selfcross.evaluate multirun/demo5-meld data=synthetic class_map=meld_iemocap
	$(PY) -m selfcross.tables table5 --results multirun/demo5 --out $(OUT) --folds 1 --seeds 1,2

demo3: $(STAMP) ## A reduced Table 3 on synthetic data (fold 1, seeds 1-2, <= 4 epochs)
	$(PY) -m selfcross.run -m experiment=demo3 $(ARGS)
	$(PY) -m selfcross.tables table3 --results multirun/demo3 --out $(OUT) --folds 1 --seeds 1,2

tune: $(STAMP) ## Tune one cell with Optuna (MODEL= MODALITY= TRIALS=; reruns continue) and build tables/tuning-*
	$(PY) -m selfcross.tune model=$(MODEL) modality=$(MODALITY) tune.n_trials=$(TRIALS) tune.folds=[$(FOLDS)] $(DATA_ARGS) $(TUNE_ARGS)
	$(PY) -m selfcross.tables tuning --results multirun/tune-$(LABEL)$(ROOT_SCHEME)-$(MODEL)-$(MODALITY) --out $(OUT)

table4: $(STAMP) ## Tune the six bi-modal Self/Cross cells, run them tuned and untuned, build tables/table4.*
	for cell in $(TUNE_CELLS); do \
	  $(PY) -m selfcross.tune model=$${cell%-*} modality=$${cell#*-} tune.n_trials=$(TRIALS) tune.folds=[$(FOLDS)] $(DATA_ARGS) $(TUNE_ARGS) || exit $$?; \
	done
	$(PY) -m selfcross.run -m experiment=table1 model=self,cross modality=TV,TA,VA $(SWEEP_ARGS) $(ARGS)
	$(PY) -m selfcross.run -m experiment=tuned $(DATA_ARGS) hydra/launcher=$(LAUNCHER) fold=$(FOLDS) seed=$(SEEDS) $(ARGS)
	$(PY) -m selfcross.tables table4 $(TABLE_ARGS) --tuned multirun/tuned-$(LABEL)$(ROOT_SCHEME)

demo-tune: $(STAMP) ## A 4-trial tuning run on synthetic data (Cross T+A, fold 1, <= 4 epochs) and its table
	$(PY) -m selfcross.tune experiment=demo_tune $(ARGS)
	$(PY) -m selfcross.tables tuning --results multirun/demo-tune --out $(OUT)
ablation: $(STAMP) ## Modality-dropout sweep (Self/Cross T+V+A, p 0/0.1/0.3), missing-modality scores, tables/ablation.*
	$(PY) -m selfcross.run -m experiment=modality_dropout $(DATA_ARGS) hydra/launcher=$(LAUNCHER) fold=$(FOLDS) seed=$(SEEDS) $(ARGS)
	$(PY) -m selfcross.ablate --results multirun/modality-dropout-$(LABEL)$(ROOT_SCHEME) --out $(OUT) --fill $(FILL)

demo-ablation: $(STAMP) ## A reduced modality-dropout sweep and missing-modality evaluation on synthetic data (8 runs)
	$(PY) -m selfcross.run -m experiment=demo_ablation $(ARGS)
	$(PY) -m selfcross.ablate --results multirun/demo-ablation --out $(OUT) --fill $(FILL)

bench: $(STAMP) ## Time training steps at paper size against the float64 reference way (defaults; ARGS="--device cuda" adds options)
	$(PY) -m selfcross.bench $(ARGS)

bench-prepare: $(STAMP) ## MELD preparation's peak memory and CPU time on fake releases of 60 and 300 clips (~8 min)
	$(PY) scripts/bench_prepare.py $(ARGS)

dashboard: $(STAMP) ## Save a W&B workspace with Table 1 panels (needs W&B credentials, --entity)
	$(PY) -m selfcross.dashboard $(ARGS)

# Modules whose mutants `make mutation` runs (mutmut name patterns; the scope is [tool.mutmut]).
# Other groups (docs/mutation.md): models, resume, synthetic, experiment and module.
MUTATE ?= selfcross.models.metrics* selfcross.report.* selfcross.data.preprocess* \
	selfcross.data.datamodule* selfcross.training.tuning* selfcross.training.tuned*

# One thread: mutmut forks each mutant from a process that has run torch, and a forked child of
# a multi-threaded torch can hang forever on a lock (no CPU used, so no timeout fires).
# TEST_DATA=<folder> keeps the tests' synthetic data across mutants (each mutant is a new test
# session); use it for every group but selfcross.data.synthetic*, whose mutants must regenerate.
mutation: $(STAMP) ## Mutation testing, not in CI (docs/mutation.md; 4-95 min per MUTATE= group)
	rm -rf mutants
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(if $(TEST_DATA),SELFCROSS_TEST_DATA=$(TEST_DATA)) \
		$(VENV)/bin/mutmut run $(foreach m,$(MUTATE),'$(m)')
	$(VENV)/bin/mutmut results

lint: $(STAMP) ## ruff: lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## ruff: fix what can be fixed and format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## Remove outputs, caches and tables (keeps .venv and data)
	rm -rf outputs multirun tables mutants .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

.PHONY: help venv run test test-faults test-slurm test-postgres test-full check table1 table2 table3 figure3 masking demo demo-attention demo3 table5 demo5 tune table4 demo-tune ablation demo-ablation bench bench-prepare dashboard mutation lint format clean
