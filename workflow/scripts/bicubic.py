from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.baselines import bicubic
from hsrdiff.files import read_observations, write_fused

obs = read_observations(snakemake.input.observations)
write_fused(snakemake.output.fused, bicubic(obs.lr_hsi, obs.ratio), obs.wavelengths,
            {"method": "bicubic", "dataset": snakemake.wildcards.dataset, "scene": snakemake.wildcards.scene})

stamp_snakemake_job(snakemake)
