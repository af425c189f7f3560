from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.data.patches import extract_patches

size = snakemake.wildcards.size
extract_patches(
    snakemake.input.scenes,
    size if size == "full" else int(size),
    snakemake.output.patches,
    base_files=snakemake.input.bases,
    **snakemake.params.options,
)

stamp_snakemake_job(snakemake)
