from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.files import read_observations
from hsrdiff.sampling import fuse_files

obs = read_observations(snakemake.input.observations)
fuse_files(
    snakemake.input.weights,
    obs.lr_hsi,
    obs.hr_msi,
    snakemake.output.fused,
    snakemake.params.schedule,
    snakemake.params.sampling,
    wavelengths=obs.wavelengths,
    operators=None if obs.psf is None else (obs.psf, obs.srf),
    base_file=snakemake.input.base,
    provenance={"dataset": snakemake.wildcards.dataset, "scene": snakemake.wildcards.scene,
                "observations": snakemake.input.observations},
)

stamp_snakemake_job(snakemake)
