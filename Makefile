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

.PHONY: install smoke test test-fast reproduce-table1 leaderboard perf clean leaderboard-matrix chromium

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

# The HTML front page test screenshots results/index.html in headless Chromium (Debian's
# `chromium`): installed here when absent and apt-get exists (the test skips, saying why, otherwise).
chromium:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "make: could not install chromium; the headless-Chromium test of results/index.html will be skipped"

test: $(STAMP) chromium
	$(OFFLINE) $(PY) -m pytest -q

test-fast: $(STAMP)
	$(OFFLINE) $(PY) -m pytest -q -m "not slow and not ddp"

# make reproduce-table1 [PAPER=cmsg] [ROOTS="voc=/data/voc coco=/data/coco"] [SEEDS="0 1 2"]
# Without PAPER: every paper's Table 1, then the leaderboard. A failed row is reported, the
# others go on, the leaderboard is rebuilt, and the exit code says whether any row failed.
PAPER ?= all
reproduce-table1: $(STAMP)
	$(if $(ROOTS),,$(OFFLINE)) $(FB) reproduce $(PAPER) --target table1 $(foreach r,$(ROOTS),--root $(r)) $(if $(SEEDS),--seeds $(SEEDS)); \
	status=$$?; $(FB) leaderboard || status=$$?; $(FB) report || status=$$?; exit $$status

# The leaderboard (results/leaderboard.{md,csv}), then the figures and results/index.html.
leaderboard: $(STAMP)
	$(FB) leaderboard
	$(FB) report

# make leaderboard-matrix [ROOTS=...] [SEEDS=...]: the cross-dataset matrix (benchmarks/matrix/:
# every model on the datasets its paper did not use; smoke versions on synthetic data without
# ROOTS), then the leaderboard and the report; a failed run is reported, the rest go on.
leaderboard-matrix: $(STAMP)
	$(if $(ROOTS),,$(OFFLINE)) $(FB) reproduce matrix --target matrix $(foreach r,$(ROOTS),--root $(r)) $(if $(SEEDS),--seeds $(SEEDS)); \
	status=$$?; $(FB) leaderboard || status=$$?; $(FB) report || status=$$?; exit $$status

perf: $(STAMP)
	$(PY) benchmarks/perf/map_speed.py

# make bench: every benchmark under benchmarks/perf/ (quick sizes), then results/perf.md
# (one line per ratio, with the machine and the date; see benchmarks/perf/run_all.py)
.PHONY: bench
bench: $(STAMP)
	$(OFFLINE) $(PY) benchmarks/perf/run_all.py

clean:
	rm -rf results/runs results/logs results/tables results/predictions results/leaderboard.* $(SYNTH)
