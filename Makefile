# fashionbench: `make smoke` (install, then the main job end to end on synthetic data)
# and `make test` (install if needed, then the tests). Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
FB     := $(VENV)/bin/fashionbench
STAMP  := $(VENV)/.installed
# Offline-safe defaults for the jobs that must run without network (tests, smoke).
OFFLINE := WANDB_MODE=$${WANDB_MODE:-offline} HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-1} PYTHONUNBUFFERED=1
SYNTH  := data/synth

.PHONY: install smoke test test-fast reproduce-table1 leaderboard perf clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

install: $(STAMP)

smoke: $(STAMP)
	test -f $(SYNTH)/voc2007/fashionbench_synthetic.json || $(FB) synth voc --year 2007 --out $(SYNTH)/voc2007 --seed 0
	test -f $(SYNTH)/coco2014/fashionbench_synthetic.json || $(FB) synth coco --year 2014 --out $(SYNTH)/coco2014 --seed 0
	$(OFFLINE) $(FB) fit --config benchmarks/baseline/voc2007.yaml --config benchmarks/smoke.yaml --data.init_args.root $(SYNTH)/voc2007
	$(OFFLINE) $(FB) fit --config benchmarks/baseline/coco2014.yaml --config benchmarks/smoke.yaml --data.init_args.root $(SYNTH)/coco2014
	$(FB) leaderboard
	@echo "smoke: done; see results/leaderboard.md"

test: $(STAMP)
	$(OFFLINE) $(PY) -m pytest -q

test-fast: $(STAMP)
	$(OFFLINE) $(PY) -m pytest -q -m "not slow and not ddp"

# make reproduce-table1 [PAPER=cmsg] [ROOTS="voc=/data/voc coco=/data/coco"] [SEEDS="0 1 2"]
# Without PAPER: every paper's Table 1, then the leaderboard. A failed row is reported, the
# others go on, the leaderboard is rebuilt, and the exit code says whether any row failed.
PAPER ?= all
reproduce-table1: $(STAMP)
	$(if $(ROOTS),,$(OFFLINE)) $(FB) reproduce $(PAPER) --target table1 $(foreach r,$(ROOTS),--root $(r)) $(if $(SEEDS),--seeds $(SEEDS)); \
	status=$$?; $(FB) leaderboard || status=$$?; exit $$status

leaderboard: $(STAMP)
	$(FB) leaderboard

perf: $(STAMP)
	$(PY) benchmarks/perf/map_speed.py

clean:
	rm -rf results/runs results/logs results/tables results/predictions results/leaderboard.* $(SYNTH)
