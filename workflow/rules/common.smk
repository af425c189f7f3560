# Configuration, wildcard constraints and every input/param function of the rules.
# Paths come from hsrdiff.paths and the training stages from hsrdiff.methods.stage_plan: the
# library fills in the same templates and plans when a stage is run by hand.
import json
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from hsrdiff import paths
from hsrdiff.bases import MEAN_BASES, parse_base_name
from hsrdiff.config import check_consistency, check_renamed_keys, schema_defaults
from hsrdiff.data.registry import DatasetSpec
from hsrdiff.methods import DETAIL_INJECTION, WITH_SETTINGS, classical_settings, method_settings, method_stages, model_base_name, patch_options, stage_plan, trained_methods


check_renamed_keys(config)
validate(config, schema="../schemas/config.schema.yaml")
# What would otherwise fail jobs later (a missing source, an SRF table, patch sizes vs the ratio).
check_consistency(config)

# Only the active datasets are resolved: an inactive entry with a missing source (HypSen)
# must not stop the demo.
SPECS = {name: DatasetSpec.from_config(config, name) for name in config["active_datasets"]}
# Trained methods (hsrdiff and the trained_methods listed in evaluation.methods) and their stages.
TRAINED = trained_methods(config)
METHOD_STAGES = {method: method_stages(config, method) for method in TRAINED}
STAGE_NAMES = list(dict.fromkeys(s["name"] for stages in METHOD_STAGES.values() for s in stages))
PATCH_SIZES = sorted(
    {str(s["patch_size"]) for stages in METHOD_STAGES.values() for s in stages}, key=lambda s: (s == "full", s.zfill(8))
)
# Each trained method's stage chain per dataset, laid out once (repeated stage names fail here,
# before any job runs); the input and param functions below look stages up in it.
PLANS = {(spec.name, method): {p.name: p for p in stage_plan(config, spec.name, spec.ratio, method)}
         for spec in SPECS.values() for method in TRAINED}
# The networks' bases by name, each computed once per scene (rule base) for the patch files and the
# sample jobs; the cnmf and hysure rows' outputs are those parts of a scene they score, when they
# run with the settings the network's base uses (the schema's evaluation.cnmf and .hysure).
NETWORK_BASES = patch_options(config)["bases"]
BASE_OF = {method: model_base_name(method_settings(config, method)["model"]) for method in TRAINED}
ROWS_AS_BASE_PARTS = [method for method in WITH_SETTINGS if method in config["evaluation"]["methods"]
                      and config["evaluation"][method] == schema_defaults("properties", "evaluation", "properties", method)]


wildcard_constraints:
    dataset="|".join(SPECS) or "NONE",
    scene=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    size=r"\d+|full",
    method="|".join(config["evaluation"]["methods"]),
    base="|".join(re.escape(name) for name in NETWORK_BASES) or "NONE",


def spec_of(wildcards):
    return SPECS[wildcards.dataset]


# -- inputs of the rules -------------------------------------------------------------------------
def raw_input(wildcards):
    """What prepare reads: the download folder, the generated file or the user's local path."""
    return str(spec_of(wildcards).raw_location())  # a ConfigError with instructions when there is no source


def train_degraded(wildcards):
    spec = spec_of(wildcards)
    return [str(spec.degraded_path(scene)) for scene in spec.train_scenes]


def train_bases(wildcards):
    """The networks' bases of the training scenes, which the patch files cut."""
    spec = spec_of(wildcards)
    return [paths.fill(paths.BASE, dataset=spec.name, base=name, scene=scene)
            for name in NETWORK_BASES for scene in spec.train_scenes]


def base_inputs(wildcards):
    """The observations, and for a scored scene the cnmf and hysure rows' outputs that are parts of its base."""
    spec = spec_of(wildcards)
    found = {"observations": str(spec.degraded_path(wildcards.scene))}
    if wildcards.scene in (*spec.test_scenes, *spec.validation_scenes):
        kind = parse_base_name(wildcards.base).kind
        for method in ROWS_AS_BASE_PARTS:
            if method in MEAN_BASES.get(kind, (kind,)):
                found[method] = paths.fill(paths.FUSED, dataset=spec.name, method=method, scene=wildcards.scene)
    return found


def sample_base(wildcards):
    return paths.fill(paths.BASE, dataset=wildcards.dataset, base=BASE_OF[wildcards.method], scene=wildcards.scene)


def all_inputs(wildcards):
    """Targets of `all`: patches, the last stage's weights, the summary table and the figures (and
    the validation scenes' table, a real pair's full-resolution table)."""
    targets = []
    for spec in SPECS.values():
        targets += [str(spec.patches_path(size)) for size in PATCH_SIZES]
        targets += [final_weights(spec, method) for method in TRAINED]
        targets.append(paths.fill(paths.SUMMARY_MD, dataset=spec.name))
        if spec.validation_scenes:
            targets.append(paths.fill(paths.VALIDATION_SUMMARY_MD, dataset=spec.name))
        targets += [paths.fill(paths.FIGURE, dataset=spec.name, scene=scene, figure="composite") for scene in spec.test_scenes]
        if spec.entry.get("msi_variable") and spec.entry.get("psf") == "estimate":  # a real pair at ratio: also fused at full resolution
            targets.append(paths.fill(paths.FULL_TABLE_MD, dataset=spec.name))
    targets += [paths.fill(paths.CONSISTENCY, pair=pair) for pair in config["generalisation"]["run"]]
    return targets


# -- params ----------------------------------------------------------------------------------------
def download_source(wildcards):
    return spec_of(wildcards).source


def generator_settings(wildcards):
    return spec_of(wildcards).source["generate"]


def scene_settings(wildcards):
    """The scene's name, split, region and file key (prepare and degrade)."""
    return spec_of(wildcards).scene(wildcards.scene).to_dict()


def reader_settings(wildcards):
    """How prepare reads the raw data: changing it reruns prepare and everything after."""
    return spec_of(wildcards).reader_settings()


def degradation_settings(wildcards):
    """How degrade simulates the observations: changing it reruns degrade and everything after, not prepare."""
    return spec_of(wildcards).degradation_settings()


# -- training ----------------------------------------------------------------------------------------
def methods_with_stage(name):
    """Wildcard constraint of a stage's rule: the trained methods that have this stage."""
    return "|".join(method for method, stages in METHOD_STAGES.items() if name in [s["name"] for s in stages])


def _planned(wildcards, name):
    return PLANS[wildcards.dataset, wildcards.method][name]


def train_inputs(name):
    """Input function of stage ``name``: its patch file and the previous stage's weights (per method)."""

    def inputs(wildcards):
        planned = _planned(wildcards, name)
        found = {"patches": str(planned.patches)}
        if planned.init_weights is not None:
            found["init"] = str(planned.init_weights)
        return found

    return inputs


def train_settings(name):
    """The JSON the training command reads: stage, model, training and diffusion settings."""

    def settings(wildcards):
        return json.dumps(_planned(wildcards, name).settings)

    return settings


def checkpoint_dir(name):
    def directory(wildcards):
        return str(_planned(wildcards, name).checkpoint_dir)

    return directory


def init_argument(wildcards, input):
    return f"--init {input.init}" if "init" in input.keys() else ""


def memory_mb(floor_mb, per_input_mb):
    """mem_mb that grows with the size of the inputs: floor_mb (Python, torch, a small scene's
    arrays) plus per_input_mb for each MB of input files, times the attempt, so that a job killed
    for memory comes back with twice, then three times as much (the profile's retries; a fixed
    number came back with the same). Peak RSS measured on CAVE x32 (`make bench-cave`,
    benchmarks/<rule>/, max_rss; 35 MB per observation file, 32 MB per fused file): base 612-829
    MB, cnmf 425-463, hysure 612-732, hypersharpen 251-623, bicubic 310-400, degrade 232-322,
    evaluate 1167-1543 (its inputs: 67 MB, hence 24 per MB), figures 572-629 (all of a scene's
    fused files). per_input_mb 0 where the input's size says nothing: prepare's may be a folder,
    patches reads its many scenes one at a time (389 MB for CAVE's 20). A fixed 16 GB made a
    demo's base jobs queue one at a time on a 24 GB node."""

    def mem_mb(wildcards, input, attempt):
        return int((floor_mb + per_input_mb * input.size_mb) * attempt)

    return mem_mb


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


def final_weights(spec, method):
    return str(list(PLANS[spec.name, method].values())[-1].weights)


def final_weights_of(wildcards):
    return final_weights(spec_of(wildcards), wildcards.method)


# -- evaluation ----------------------------------------------------------------------------------------
def _metric_rows(spec, scenes):
    return [
        paths.fill(paths.METRIC_ROW, dataset=spec.name, method=method, scene=scene)
        for method in config["evaluation"]["methods"]
        for scene in scenes
    ]


def metric_rows(wildcards):
    spec = spec_of(wildcards)
    return _metric_rows(spec, spec.test_scenes)


def validation_metric_rows(wildcards):
    spec = spec_of(wildcards)
    if not spec.validation_scenes:
        raise WorkflowError(f"dataset '{spec.name}' has no validation scenes (datasets.{spec.name}.scenes.validation)")
    return _metric_rows(spec, spec.validation_scenes)


def fused_of_methods(wildcards):
    """Fused files of one scene, in the order of evaluation.methods."""
    return [paths.fill(paths.FUSED, dataset=wildcards.dataset, method=method, scene=wildcards.scene)
            for method in config["evaluation"]["methods"]]


# -- real-scenario generalisation -------------------------------------------------------------------
def generalisation_settings(wildcards):
    pairs = config["generalisation"]["pairs"]
    if wildcards.pair not in pairs:
        raise ValueError(f"generalisation.run names '{wildcards.pair}', which is not in generalisation.pairs")
    return pairs[wildcards.pair]


def generalisation_file(wildcards):
    return generalisation_settings(wildcards)["path"]


def full_resolution_inputs(wildcards):
    """The pair's file and the final weights of each trained method compared on it."""
    spec = spec_of(wildcards)
    if not (spec.entry.get("msi_variable") and spec.entry.get("psf") == "estimate"):
        raise ValueError(f"dataset '{spec.name}' is not a real pair at a ratio (msi_variable, psf: estimate): it has no "
                         "full-resolution run")
    return {"pair": str(spec.raw_location()),
            **{m: final_weights(spec, m) for m in config["evaluation"]["methods"] if m in TRAINED}}


def generalisation_weights(wildcards):
    dataset = generalisation_settings(wildcards)["model_dataset"]
    if dataset not in SPECS:
        raise ValueError(f"generalisation.pairs.{wildcards.pair}.model_dataset '{dataset}' is not an active dataset")
    return final_weights(SPECS[dataset], "hsrdiff")
