from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.baselines import classical
from hsrdiff.files import read_observations, write_fused

method, settings = snakemake.params.method, snakemake.params.settings
obs = read_observations(snakemake.input.observations)
result = classical(method, obs.lr_hsi, obs.hr_msi, obs.need("psf"), obs.need("srf"), {method: settings})
write_fused(snakemake.output.fused, result, obs.wavelengths,
            {"method": method, "dataset": snakemake.wildcards.dataset, "scene": snakemake.wildcards.scene, **settings})

stamp_snakemake_job(snakemake)
