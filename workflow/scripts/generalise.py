from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.evaluation import write_table
from hsrdiff.realpair import generalise, load_pair

settings = snakemake.params.pair
pair = load_pair(snakemake.input.pair, settings["hsi_variable"], settings["msi_variable"], settings["ratio"])
consistency = generalise(snakemake.input.weights, pair, settings["ratio"], snakemake.params.schedule,
                         snakemake.params.sampling, snakemake.output.fused, {"pair": snakemake.wildcards.pair})
write_table([{"pair": snakemake.wildcards.pair, "note": pair.note, **consistency}], snakemake.output.consistency)

stamp_snakemake_job(snakemake)
