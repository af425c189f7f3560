from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.baselines import bicubic
from hsrdiff.files import read_observations, write_fused
from hsrdiff.provenance import stamp_snakemake_job

obs = read_observations(snakemake.input.observations)
write_fused(snakemake.output.fused, bicubic(obs.lr_hsi, obs.ratio), obs.wavelengths,
            {"method": "bicubic", "dataset": snakemake.wildcards.dataset, "scene": snakemake.wildcards.scene})

stamp_snakemake_job(snakemake)
