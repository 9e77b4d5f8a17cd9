# asr_analogy: `make demo` runs the offline syn2real demo, `make test` runs the tests.
# Both create or refresh .venv and install what they need (Python packages, Debian tools, the corpus).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch on this machine; override (e.g. TORCH_SPEC="torch==2.13.0 --index-url ...") for GPUs.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= offline,dev
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
APT_PACKAGES := espeak-ng sox
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: venv system-deps test demo corpus noise bench mutation clean help
help:
	@echo "make demo     - offline syn2real demo on real human speech"
	@echo "make test     - run the test suite"
	@echo "make corpus   - prepare the real-speech IVR corpus in data/ivr"
	@echo "make noise    - fetch real hold music for the recipe's music conditions"
	@echo "make bench    - run the benchmarks"
	@echo "make mutation - mutation testing (slow); MUTATE=asr_analogy/ops for one area"

$(STAMP): pyproject.toml Makefile
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	echo "$(TORCH_SPEC)" | tr ' ' '\n' | grep '^torch' > $(VENV)/constraints.txt
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -c $(VENV)/constraints.txt -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

# Debian tools used by TTS and audio tests (espeak-ng, sox). Needs root or sudo; skipped with a note otherwise.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  ($(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	    || echo "note: could not install$$missing; tests that need them are skipped"; \
	fi

test: venv system-deps
	$(BIN)/python -m pytest -q

demo: venv system-deps corpus
	$(BIN)/asr-analogy demo

# The real-speech IVR corpus (Debian asterisk prompts, fetched with apt-get download) in data/ivr; a no-op once
# it is there. --apt-update lets a fresh machine (as root) refresh apt's package lists when they lack the packages.
corpus: venv
	$(BIN)/asr-analogy prep ivr-prompts data/ivr --apt-update

# Real hold music (Debian asterisk-moh-opsound-wav, CC-BY-SA) for corpus.degrade "music:..." conditions, fetched
# with apt-get download into the cache; a recipe run fetches it on first use too (without --apt-update).
noise: venv
	$(BIN)/python -m data_prep.hold_music --apt-update

bench: bench-setup corpus
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# Peers for benchmarks/merge_vs_mergekit.py: mergekit 0.1.5 in its own venv (its pins never touch .venv),
# gguf + psutil in .venv. The same CPU torch in both.
MERGEKIT_VENV ?= .venv-mergekit
.PHONY: bench-setup
bench-setup: venv
	@[ -x $(MERGEKIT_VENV)/bin/python ] || $(PYTHON) -m venv $(MERGEKIT_VENV)
	echo "$(TORCH_SPEC)" | tr ' ' '\n' | grep '^torch' > $(MERGEKIT_VENV)/constraints.txt
	@[ -x $(MERGEKIT_VENV)/bin/mergekit-yaml ] || ( \
	  $(MERGEKIT_VENV)/bin/python -m pip install -q $(TORCH_SPEC) && \
	  $(MERGEKIT_VENV)/bin/python -m pip install -q -c $(MERGEKIT_VENV)/constraints.txt mergekit==0.1.5 )
	$(BIN)/python -m pip install -q -c $(MERGEKIT_VENV)/constraints.txt -e ".[$(EXTRAS),bench]"

# Mutation testing with mutmut (the `mutation` extra), not part of `make test` or CI: the score and every
# surviving mutant go to exp/mutation/report.md. MUTATE limits it to some modules, e.g. MUTATE=asr_analogy/ops.
MUTATE ?=
mutation: venv
	@$(BIN)/python -c "import mutmut" 2>/dev/null || \
	  $(BIN)/python -m pip install -q -c $(VENV)/constraints.txt -e ".[$(EXTRAS),mutation]"
	$(BIN)/python tools/mutation.py $(if $(MUTATE),--scope $(MUTATE))

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
