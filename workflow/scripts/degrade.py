from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.data.registry import Scene
from hsrdiff.data.simulate import degrade_scene
from hsrdiff.provenance import stamp_snakemake_job

degrade_scene(snakemake.wildcards.dataset, Scene.from_dict(snakemake.params.scene), snakemake.params.degradation,
              snakemake.input.hsi, snakemake.output.observations)

stamp_snakemake_job(snakemake)
