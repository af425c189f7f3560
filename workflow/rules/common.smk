# Configuration, wildcard constraints and every input/param function of the rules.
from snakemake.utils import validate

from hsrdiff.data.registry import DatasetSpec


validate(config, schema="../schemas/config.schema.yaml")

# Only the active datasets are resolved: an inactive entry with a missing source (HypSen)
# must not stop the demo.
SPECS = {name: DatasetSpec.from_config(config, name) for name in config["active_datasets"]}
STAGES = config["training"]["stages"]
PATCH_SIZES = sorted({str(stage["patch_size"]) for stage in STAGES}, key=lambda s: (s == "full", s.zfill(8)))


wildcard_constraints:
    dataset="|".join(SPECS) or "NONE",
    scene=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    size=r"\d+|full",


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
    """Targets of `all`: training patches of every stage and the degraded test scenes."""
    targets = []
    for spec in SPECS.values():
        targets += [str(spec.patches_path(size)) for size in PATCH_SIZES]
        targets += [str(spec.degraded_path(scene)) for scene in spec.test_scenes]
    return targets


# -- params ----------------------------------------------------------------------------------------
def download_source(wildcards):
    return spec_of(wildcards).source


def generator_settings(wildcards):
    return spec_of(wildcards).source["generate"]
