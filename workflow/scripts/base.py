from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.baselines import write_scene_base

write_scene_base(snakemake.input.observations, snakemake.wildcards.base, snakemake.output.base,
                 row_files={kind: path for kind, path in snakemake.input.items() if kind != "observations"},
                 provenance={"dataset": snakemake.wildcards.dataset})

stamp_snakemake_job(snakemake)
