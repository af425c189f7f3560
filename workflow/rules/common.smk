# Configuration, wildcard constraints and every input/param function of the rules.
import json
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from hsrdiff.data.registry import DatasetSpec
from hsrdiff.runs import run_stages, trained_runs


validate(config, schema="../schemas/config.schema.yaml")

# Only the active datasets are resolved: an inactive entry with a missing source (HypSen)
# must not stop the demo.
SPECS = {name: DatasetSpec.from_config(config, name) for name in config["active_datasets"]}
# Trained methods (hsrdiff and the variants listed in evaluation.methods) and their stages.
RUNS = trained_runs(config)
RUN_STAGES = {run: run_stages(config, run) for run in RUNS}
STAGE_NAMES = list(dict.fromkeys(s["name"] for stages in RUN_STAGES.values() for s in stages))
PATCH_SIZES = sorted(
    {str(s["patch_size"]) for stages in RUN_STAGES.values() for s in stages}, key=lambda s: (s == "full", s.zfill(8))
)


wildcard_constraints:
    dataset="|".join(SPECS) or "NONE",
    scene=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    size=r"\d+|full",
    method="|".join(config["evaluation"]["methods"]),
    run="|".join(RUNS) or "NONE",


def spec_of(wildcards):
    return SPECS[wildcards.dataset]


# -- inputs of the rules -------------------------------------------------------------------------
def raw_input(wildcards):
    """What prepare reads: the download folder, the generated file or the user's local path."""
    spec = spec_of(wildcards)
    if spec.source_kind == "url":
        return f"resources/downloads/{spec.name}"
    return str(spec.raw_location())  # a ConfigError with instructions when there is no source


def train_degraded(wildcards):
    spec = spec_of(wildcards)
    return [str(spec.degraded_path(scene)) for scene in spec.train_scenes]


def all_inputs(wildcards):
    """Targets of `all`: patches, the last stage's weights and the summary table."""
    targets = []
    for spec in SPECS.values():
        targets += [str(spec.patches_path(size)) for size in PATCH_SIZES]
        targets += [final_weights(spec, run) for run in RUNS]
        targets.append(f"results/{spec.name}/summary.md")
        targets += [f"results/{spec.name}/figures/{scene}_composite.png" for scene in spec.test_scenes]
    targets += [f"results/generalisation/{pair}/consistency.csv" for pair in config["generalisation"]["run"]]
    return targets


# -- params ----------------------------------------------------------------------------------------
def download_source(wildcards):
    return spec_of(wildcards).source


def generator_settings(wildcards):
    return spec_of(wildcards).source["generate"]


# -- training ----------------------------------------------------------------------------------------
def runs_with_stage(name):
    """Wildcard constraint of a stage's rule: the trained methods that have this stage."""
    return "|".join(run for run, stages in RUN_STAGES.items() if name in [s["name"] for s in stages])


def train_inputs(name):
    """Input function of stage ``name``: its patch file and the previous stage's weights (per method)."""

    def inputs(wildcards):
        spec = spec_of(wildcards)
        stages = RUN_STAGES[wildcards.run]
        index = [s["name"] for s in stages].index(name)
        found = {"patches": str(spec.patches_path(stages[index]["patch_size"]))}
        if index > 0:
            found["init"] = str(spec.weights_path(wildcards.run, stages[index - 1]["name"]))
        return found

    return inputs


def train_settings(name):
    """The JSON the training command reads: stage, model, training and diffusion settings."""

    def settings(wildcards):
        from hsrdiff.cli import training_settings

        return json.dumps(training_settings(config, spec_of(wildcards), name, wildcards.run))

    return settings


def init_argument(wildcards, input):
    return f"--init {input.init}" if "init" in input.keys() else ""


def cpus_per_gpu(wildcards, threads):
    """A GPU rule's CPU cores follow its threads, so `--max-threads` fits it to small nodes."""
    return threads


def train_launcher(wildcards, resources):
    """How the training starts: one process; torchrun with one process per GPU when a rule asks
    for several GPUs; or, with the `mpi` resource (several nodes), that launcher (srun) starting
    `tasks_per_node` processes on each of `nodes` nodes, which take their ranks from SLURM."""
    mpi = getattr(resources, "mpi", None)
    if mpi:
        nodes = int(getattr(resources, "nodes", 1) or 1)
        per_node = int(getattr(resources, "tasks_per_node", 0) or 0)
        if per_node < 1:
            raise WorkflowError("an `mpi` training job needs `tasks_per_node` (one task per GPU of a node)")
        return f"{mpi} --nodes={nodes} --ntasks-per-node={per_node} --kill-on-bad-exit=1 {sys.executable}"
    gpus = int(getattr(resources, "gpu", 0) or 0)
    if gpus > 1:
        return f"{sys.executable} -m torch.distributed.run --standalone --nproc_per_node={gpus}"
    return sys.executable


def final_weights(spec, run):
    return str(spec.weights_path(run, RUN_STAGES[run][-1]["name"]))


def final_weights_of(wildcards):
    return final_weights(spec_of(wildcards), wildcards.run)


# -- evaluation ----------------------------------------------------------------------------------------
def metric_rows(wildcards):
    spec = spec_of(wildcards)
    return [
        f"results/{spec.name}/metrics/{method}/{scene}.csv"
        for method in config["evaluation"]["methods"]
        for scene in spec.test_scenes
    ]


def fused_of_methods(wildcards):
    """Fused files of one scene, in the order of evaluation.methods."""
    return [f"results/{wildcards.dataset}/fused/{method}/{wildcards.scene}.h5" for method in config["evaluation"]["methods"]]


# -- real-scenario generalisation -------------------------------------------------------------------
def generalisation_settings(wildcards):
    pairs = config["generalisation"]["pairs"]
    if wildcards.pair not in pairs:
        raise ValueError(f"generalisation.run names '{wildcards.pair}', which is not in generalisation.pairs")
    return pairs[wildcards.pair]


def generalisation_file(wildcards):
    return generalisation_settings(wildcards)["path"]


def generalisation_weights(wildcards):
    dataset = generalisation_settings(wildcards)["model_dataset"]
    if dataset not in SPECS:
        raise ValueError(f"generalisation.pairs.{wildcards.pair}.model_dataset '{dataset}' is not an active dataset")
    return final_weights(SPECS[dataset], "hsrdiff")
