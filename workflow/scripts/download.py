from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.data.download import fetch_dataset

source, options = snakemake.params.source, snakemake.params.options
fetch_dataset(
    source["url"],
    snakemake.output.raw,
    snakemake.params.cache,
    sha256=source.get("sha256"),
    size=source.get("size"),
    retries=options["retries"],
    timeout=options["timeout_s"],
    backoff=options["backoff_s"],
)

stamp_snakemake_job(snakemake)
