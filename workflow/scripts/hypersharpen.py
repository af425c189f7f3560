from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.baselines import HYPERSHARPENING
from hsrdiff.files import read_observations, write_fused
from hsrdiff.provenance import stamp_snakemake_job

method = snakemake.wildcards.method
obs = read_observations(snakemake.input.observations)
result = HYPERSHARPENING[method](obs.lr_hsi, obs.hr_msi, obs.need("psf"))
write_fused(snakemake.output.fused, result, obs.wavelengths,
            {"method": method, "dataset": snakemake.wildcards.dataset, "scene": snakemake.wildcards.scene})

stamp_snakemake_job(snakemake)
