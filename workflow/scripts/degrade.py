from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.data.registry import Scene
from hsrdiff.data.simulate import degrade_scene

degrade_scene(snakemake.wildcards.dataset, Scene.from_dict(snakemake.params.scene), snakemake.params.degradation,
              snakemake.input.hsi, snakemake.output.observations)

stamp_snakemake_job(snakemake)
