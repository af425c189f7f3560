from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.data.demo import generate_demo

generate_demo(snakemake.params.settings, snakemake.output.scenes)
