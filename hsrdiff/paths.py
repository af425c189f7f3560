"""Where every file of the pipeline lives: one template per kind of file.

The Snakemake rules use these templates as their inputs and outputs (Snakemake fills the
wildcards) and the library and the CLI fill them with :func:`fill`, so the workflow and a stage
run by hand read and write the same paths. Paths are relative to the working directory.
"""

from __future__ import annotations

import re
from pathlib import Path

# data stages
DOWNLOAD = "resources/downloads/{dataset}"
DOWNLOAD_CACHE = "resources/cache/{dataset}"
GENERATED = "resources/generated/{dataset}/scenes.h5"
PREPARED = "resources/prepared/{dataset}/{scene}.h5"
DEGRADED = "resources/degraded/{dataset}/{scene}.h5"
PATCHES = "resources/patches/{dataset}/p{size}.h5"
# a network base (hsrdiff.bases.base_name) of one scene, read by the patch files and the sample jobs
BASE = "resources/bases/{dataset}/{base}/{scene}.h5"

# training: the stage's final artefact and loss curve are outputs; the checkpoint folder (resumable
# state and the CSV logs) is not, so that a job killed at its time limit keeps it
WEIGHTS = "results/{dataset}/models/{method}/{stage}.pt"
LOSS_CURVE = "results/{dataset}/models/{method}/{stage}_loss.png"
CHECKPOINTS = "results/{dataset}/checkpoints/{method}/{stage}"

# evaluation
FUSED = "results/{dataset}/fused/{method}/{scene}.h5"
METRIC_ROW = "results/{dataset}/metrics/{method}/{scene}.csv"
METRICS = "results/{dataset}/metrics.csv"
SUMMARY_CSV = "results/{dataset}/summary.csv"
SUMMARY_MD = "results/{dataset}/summary.md"
# the same for the validation scenes (datasets.<name>.scenes.validation)
VALIDATION_METRICS = "results/{dataset}/validation/metrics.csv"
VALIDATION_SUMMARY_CSV = "results/{dataset}/validation/summary.csv"
VALIDATION_SUMMARY_MD = "results/{dataset}/validation/summary.md"
FIGURE = "results/{dataset}/figures/{scene}_{figure}.png"
FIGURES = ("composite", "errors", "spectra")

# a real pair (datasets with msi_variable) fused at full resolution, judged without a reference
FULL_FUSED = "results/{dataset}/full_resolution/{method}.h5"
FULL_TABLE_CSV = "results/{dataset}/full_resolution.csv"
FULL_TABLE_MD = "results/{dataset}/full_resolution.md"
FULL_FIGURE = "results/{dataset}/figures/full_resolution.png"

# the real-scenario experiment
GENERALISED = "results/generalisation/{pair}/fused.h5"
CONSISTENCY = "results/generalisation/{pair}/consistency.csv"

_FIELD = re.compile(r"\{(\w+)\}")


def fill(template: str, **values) -> str:
    """Replace the ``{name}`` fields of ``template`` given in ``values``; leave the others.

    ``fill(WEIGHTS, stage="stage1")`` is still a Snakemake pattern in ``dataset`` and ``method``.
    """
    return _FIELD.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


def path(template: str, **values) -> Path:
    """``template`` with every field filled; a missing value is a programming error."""
    missing = sorted(set(_FIELD.findall(template)) - set(values))
    if missing:
        raise KeyError(f"{template}: no value for {', '.join(missing)}")
    return Path(fill(template, **values))
