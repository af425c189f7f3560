from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.data.prepare import prepare_scene
from hsrdiff.data.registry import DatasetSpec
from hsrdiff.provenance import stamp_snakemake_job

spec = DatasetSpec.from_config(snakemake.config, snakemake.wildcards.dataset)
prepare_scene(spec, snakemake.wildcards.scene, snakemake.output.hsi)

stamp_snakemake_job(snakemake)
