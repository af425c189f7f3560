from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.data.patches import extract_patches
from hsrdiff.provenance import stamp_snakemake_job

size = snakemake.wildcards.size
extract_patches(
    snakemake.input.scenes,
    size if size == "full" else int(size),
    snakemake.output.patches,
    **snakemake.params.options,
)

stamp_snakemake_job(snakemake)
