# LVPC: set up, test, run the demo, package and deploy the QGIS plugin (Debian 12 / Ubuntu).
# Quick start on a fresh machine: `make test` and `make demo`; both run the whole set-up first when it is missing.

SHELL := /bin/sh
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.lvpc-requirements-installed
PROFILE ?= default
PLUGINS_DIR := $(HOME)/.local/share/QGIS/QGIS3/profiles/$(PROFILE)/python/plugins

.PHONY: setup system test demo package deploy docs

# Idempotent; fast when done: the system check reads dpkg's records and pip runs only when requirements.txt changed.
setup: system $(STAMP)

system:
	@sh scripts/setup-system.sh

$(PYTHON): | system
	/usr/bin/python3 -m venv --system-site-packages $(VENV)

$(STAMP): requirements.txt | $(PYTHON)
	@echo "setup: installing the pinned Python packages into $(VENV) (first time: a few minutes, about 6 GB)"
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -c "import qgis.core, osgeo.gdal, torch, torchvision, open_clip; print('setup: QGIS, GDAL, torch', torch.__version__, 'ready in $(VENV)')"
	touch $@

# pytest exits 5 when it collected no test: that fails here like any other non-zero exit.
test: setup
	QT_QPA_PLATFORM=offscreen $(PYTHON) -m pytest -q tests

demo: setup
	sh scripts/demo.sh

# The algorithm reference (docs/algorithms.html, what each dialog's Help button opens) and the dialog screenshots,
# made in the real QGIS desktop under Xvfb; rerun after changing a help text (a test compares the committed page).
docs: setup
	$(PYTHON) scripts/algorithm_docs.py --out docs

DIST ?= dist

package:
	/usr/bin/python3 scripts/package.py --out-dir "$(DIST)"

deploy:
	@mkdir -p "$(PLUGINS_DIR)"
	@if [ -e "$(PLUGINS_DIR)/lvpc" ] && [ ! -L "$(PLUGINS_DIR)/lvpc" ]; then \
		echo "deploy: $(PLUGINS_DIR)/lvpc exists and is not a link; remove it (an installed copy?) first" >&2; exit 1; fi
	ln -sfn "$(CURDIR)" "$(PLUGINS_DIR)/lvpc"
	@echo "deploy: $(PLUGINS_DIR)/lvpc -> $(CURDIR); enable LVPC in QGIS (Plugins > Manage and Install Plugins)"

# Accuracy benchmark (issues 6, 10): Table-1 layout per scene under docs/benchmarks/; resumable (cached per run). Several hours
# on 2 cores (Brandenburg: about 25 min per seed for LVPC, its dropout row and the single-modality nets, 30 for the CNN).
.PHONY: bench-accuracy
BENCH_SEEDS ?= 0 1 2
BENCH_DATA ?= ../shared/data
bench-accuracy: setup
	OMP_NUM_THREADS=1 $(PYTHON) -m bench.accuracy --dataset trento --data $(BENCH_DATA)/trento_lidar --train-per-class 0 --test-per-class 0 --epochs1 100 --patience 25 --seeds $(BENCH_SEEDS)
	OMP_NUM_THREADS=1 $(PYTHON) -m bench.accuracy --dataset slovenia --data $(BENCH_DATA)/slovenia --seeds $(BENCH_SEEDS)
	OMP_NUM_THREADS=1 $(PYTHON) -m bench.accuracy --dataset brandenburg --data $(BENCH_DATA)/brandenburg --seeds $(BENCH_SEEDS)
	OMP_NUM_THREADS=1 $(PYTHON) -m bench.accuracy --dataset samson --data $(BENCH_DATA)/samson --seeds $(BENCH_SEEDS)

# Ablations of the engine's choices (docs/benchmarks/README.md): Trento with one training default changed per table.
.PHONY: bench-ablations
ABLATIONS ?= stem_depth=0 refit=false label_smoothing=0 warmup_epochs=0 augment=false
bench-ablations: setup
	for v in $(ABLATIONS); do OMP_NUM_THREADS=1 $(PYTHON) -m bench.accuracy --dataset trento --data $(BENCH_DATA)/trento_lidar \
		--train-per-class 0 --test-per-class 0 --epochs1 100 --patience 25 --seeds $(BENCH_SEEDS) --methods single \
		--name trento_$$(echo $$v | tr = _) --set $$v || exit 1; done

# Speed benchmarks (issue 5): each prints a table and writes bench/results/*.json; see docs/performance.md.
# Timed on a shared machine: run when it is otherwise idle (check `uptime`).
.PHONY: bench
bench: setup
	$(PYTHON) -m bench.inference
	$(PYTHON) -m bench.memory
	$(PYTHON) -m bench.training_time
	$(PYTHON) -m bench.random_forest
	$(PYTHON) -m bench.tradeoff
