from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.data.demo import generate_demo
from hsrdiff.provenance import stamp_snakemake_job

generate_demo(snakemake.params.settings, snakemake.output.scenes)

stamp_snakemake_job(snakemake)
