from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.data.demo import generate_demo

generate_demo(snakemake.params.settings, snakemake.output.scenes)

stamp_snakemake_job(snakemake)
