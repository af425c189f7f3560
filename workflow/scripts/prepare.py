from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.data.prepare import prepare_scene
from hsrdiff.data.registry import Scene

prepare_scene(snakemake.wildcards.dataset, Scene.from_dict(snakemake.params.scene), snakemake.params.reader,
              snakemake.input.raw, snakemake.output.hsi)

stamp_snakemake_job(snakemake)
