from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.evaluation import evaluate_scene, write_table
from hsrdiff.provenance import stamp_snakemake_job

wc = snakemake.wildcards
row = evaluate_scene(snakemake.input.fused, snakemake.input.observations, wc.dataset, wc.method, wc.scene)
write_table([row], snakemake.output.row)

stamp_snakemake_job(snakemake)
