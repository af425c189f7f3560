# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Both create the virtual environment .venv on first use and reuse it afterwards.

PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin

.PHONY: demo test dag rulegraph lint clean-results bench-sampling bench-cave slurm-profile

# pip byte-compiles what it installs, not an editable package's own source: where
# PYTHONDONTWRITEBYTECODE is set (as on the development machine) every Snakemake job would compile
# hsrdiff again, 0.55 s each.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m compileall -q hsrdiff
	touch $@

## demo: the whole pipeline on the embedded demo dataset (CPU, minutes), then the HTML report
demo: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES) all
	$(BIN)/snakemake --cores 1 --report results/report.html

## test: the test suite (CPU)
test: $(BIN)/.installed
	$(BIN)/python -m pytest -ra

## dag: the rule graph and the job graph as SVG (needs graphviz's `dot`)
dag: $(BIN)/.installed
	mkdir -p results
	$(BIN)/snakemake --rulegraph dot --cores 1 | dot -Tsvg > results/rulegraph.svg
	$(BIN)/snakemake --dag dot --cores 1 | dot -Tsvg > results/dag.svg

## rulegraph: refresh the rule graph shown in README.md (Mermaid, drawn by Snakemake itself)
rulegraph: $(BIN)/.installed
	$(BIN)/snakemake --rulegraph mermaid-js --cores 1 > .rulegraph.mmd
	awk -v graph=.rulegraph.mmd ' \
	  /<!-- rulegraph:start -->/ { print; print "```mermaid"; while ((getline line < graph) > 0) print line; print "```"; skip = 1; next } \
	  /<!-- rulegraph:end -->/ { skip = 0 } \
	  !skip' README.md > .README.md.tmp && mv .README.md.tmp README.md && rm .rulegraph.mmd

## lint: Snakemake's own checks of the workflow
lint: $(BIN)/.installed
	$(BIN)/snakemake --lint --cores 1

## slurm-profile: once per user: makes `snakemake --profile slurm all` work from the repository root
## (Snakemake looks a profile's name up in $XDG_CONFIG_HOME/snakemake, not in profiles/)
slurm-profile:
	mkdir -p "$${XDG_CONFIG_HOME:-$$HOME/.config}/snakemake"
	ln -sfn "$(CURDIR)/profiles/slurm" "$${XDG_CONFIG_HOME:-$$HOME/.config}/snakemake/slurm"
	@echo "profile 'slurm' -> $(CURDIR)/profiles/slurm; in each shell: . $(BIN)/activate && snakemake --profile slurm all"

## bench-cave: the paper's CAVE x32 protocol from ../shared/data/cave on 2 CPU cores (within 90 minutes; docs/performance.md)
bench-cave: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES) all --configfile config/config.yaml config/bench/cave.yaml

## bench-sampling: PSNR, SAM and seconds per sampler and step count on the demo model (after `make demo`)
bench-sampling: $(BIN)/.installed
	$(BIN)/hsrdiff bench-sampling --weights results/demo/models/hsrdiff/stage3.pt \
	  --regression results/demo/models/regression/stage3.pt \
	  --csv results/bench/sampling_demo.csv --plot results/bench/sampling_demo.png resources/degraded/demo/test_*.h5
	$(BIN)/hsrdiff bench-sampling --weights results/demo/models/hsrdiff/stage3.pt --samplers ancestral --steps 3 \
	  --n-samples 8 --views 1 8 --no-paper-reference \
	  --csv results/bench/sampling_demo_averaged.csv resources/degraded/demo/test_*.h5
	$(BIN)/hsrdiff bench-sampling --weights results/demo/models/hsrdiff/stage3.pt --samplers ancestral --steps 3 \
	  --regression results/demo/models/regression/stage3.pt --consistency 0 20 --classical glp-hs cnmf --no-paper-reference \
	  --csv results/bench/sampling_demo_consistency.csv resources/degraded/demo/test_*.h5

clean-results:
	rm -rf results logs benchmarks
