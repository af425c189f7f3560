from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.baselines import cnmf
from hsrdiff.files import read_observations, write_fused

obs = read_observations(snakemake.input.observations)
settings = snakemake.params.settings
result = cnmf(obs.lr_hsi, obs.hr_msi, obs.need("srf"), obs.need("psf"), n_endmembers=settings["endmembers"],
              inner_iterations=settings["inner_iterations"], outer_iterations=settings["outer_iterations"],
              delta=settings["delta"])
write_fused(snakemake.output.fused, result, obs.wavelengths,
            {"method": "cnmf", "dataset": snakemake.wildcards.dataset, "scene": snakemake.wildcards.scene, **settings})

stamp_snakemake_job(snakemake)
