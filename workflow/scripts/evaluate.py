from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.evaluation import evaluate_scene, write_table

wc = snakemake.wildcards
row = evaluate_scene(snakemake.input.fused, snakemake.input.observations, wc.dataset, wc.method, wc.scene)
write_table([row], snakemake.output.row)

stamp_snakemake_job(snakemake)
