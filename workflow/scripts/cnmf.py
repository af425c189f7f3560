from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.baselines import cnmf
from hsrdiff.degradation import PSF
from hsrdiff.io import open_h5, read_arrays
from hsrdiff.provenance import stamp_snakemake_job
from hsrdiff.sampling import write_fused

obs = read_arrays(snakemake.input.observations, "lr_hsi", "hr_msi", "srf", "psf", "wavelengths")
with open_h5(snakemake.input.observations) as fh:
    psf = PSF(obs["psf"], int(fh.attrs["ratio"]), str(fh.attrs["psf_mode"]), int(fh.attrs["psf_offset"]))
settings = snakemake.params.settings
result = cnmf(obs["lr_hsi"], obs["hr_msi"], obs["srf"], psf, n_endmembers=settings["endmembers"],
              inner_iterations=settings["inner_iterations"], outer_iterations=settings["outer_iterations"],
              delta=settings["delta"])
write_fused(snakemake.output.fused, result, obs["wavelengths"],
            {"method": "cnmf", "dataset": snakemake.wildcards.dataset, "scene": snakemake.wildcards.scene, **settings})

stamp_snakemake_job(snakemake)
