from hsrdiff.log import setup_logging

setup_logging(snakemake.log[0])

from hsrdiff.evaluation import bicubic
from hsrdiff.io import open_h5, read_arrays
from hsrdiff.provenance import stamp_snakemake_job
from hsrdiff.sampling import write_fused

obs = read_arrays(snakemake.input.observations, "lr_hsi", "wavelengths")
with open_h5(snakemake.input.observations) as fh:
    ratio = int(fh.attrs["ratio"])
write_fused(snakemake.output.fused, bicubic(obs["lr_hsi"], ratio), obs["wavelengths"],
            {"method": "bicubic", "dataset": snakemake.wildcards.dataset, "scene": snakemake.wildcards.scene})

stamp_snakemake_job(snakemake)
