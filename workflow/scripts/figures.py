from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.figures import scene_figures

scene_figures(
    snakemake.input.observations,
    dict(zip(snakemake.params.methods, snakemake.input.fused)),
    {"composite": snakemake.output.composite, "errors": snakemake.output.errors, "spectra": snakemake.output.spectra},
    title=f"{snakemake.wildcards.dataset} {snakemake.wildcards.scene}",
)

stamp_snakemake_job(snakemake)
