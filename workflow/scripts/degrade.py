from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.data.registry import DatasetSpec
from hsrdiff.data.simulate import degrade_scene
from hsrdiff.provenance import stamp_snakemake_job

spec = DatasetSpec.from_config(snakemake.config, snakemake.wildcards.dataset)
degrade_scene(spec, snakemake.wildcards.scene, snakemake.input.hsi, snakemake.output.observations)

stamp_snakemake_job(snakemake)
