from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.figures import scene_figures
from hsrdiff.provenance import stamp_snakemake_job

scene_figures(
    snakemake.input.observations,
    dict(zip(snakemake.params.methods, snakemake.input.fused)),
    {"composite": snakemake.output.composite, "errors": snakemake.output.errors, "spectra": snakemake.output.spectra},
    title=f"{snakemake.wildcards.dataset} {snakemake.wildcards.scene}",
)

stamp_snakemake_job(snakemake)
