from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

from hsrdiff.data.pair import msi_without_offset, read_pair
from hsrdiff.figures import pair_figure
from hsrdiff.realpair import full_resolution, write_full_resolution_table

dataset, methods = snakemake.wildcards.dataset, snakemake.params.methods
pair = read_pair(dataset, snakemake.params.reader, snakemake.input.pair)
rows, cubes = full_resolution(pair, methods, {m: snakemake.input[m] for m in snakemake.params.trained},
                              snakemake.params.schedule, snakemake.params.sampling, snakemake.params.classical,
                              dict(zip(methods, snakemake.output.fused)), {"dataset": dataset})
write_full_resolution_table(rows, snakemake.output.table_csv, snakemake.output.table_md, pair)
pair_figure(pair.hsi, msi_without_offset(pair.msi, pair.fit.offset), cubes, pair.wavelengths, pair.fit.srf,
            snakemake.output.figure, title=f"{dataset}: full resolution")

stamp_snakemake_job(snakemake)
