from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.data.prepare import prepare_scene
from hsrdiff.data.registry import Scene
from hsrdiff.provenance import stamp_snakemake_job

prepare_scene(snakemake.wildcards.dataset, Scene.from_dict(snakemake.params.scene), snakemake.params.reader,
              snakemake.input.raw, snakemake.output.hsi)

stamp_snakemake_job(snakemake)
