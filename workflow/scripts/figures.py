from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.figures import scene_figures

scene_figures(
    snakemake.input.observations,
    dict(zip(snakemake.params.methods, snakemake.input.fused)),
    {"composite": snakemake.output.composite, "errors": snakemake.output.errors, "spectra": snakemake.output.spectra},
    title=f"{snakemake.wildcards.dataset} {snakemake.wildcards.scene}",
)
