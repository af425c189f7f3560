from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.baselines import HYPERSHARPENING
from hsrdiff.files import read_observations, write_fused

method = snakemake.wildcards.method
obs = read_observations(snakemake.input.observations)
result = HYPERSHARPENING[method](obs.lr_hsi, obs.hr_msi, obs.need("psf"))
write_fused(snakemake.output.fused, result, obs.wavelengths,
            {"method": method, "dataset": snakemake.wildcards.dataset, "scene": snakemake.wildcards.scene})

stamp_snakemake_job(snakemake)
