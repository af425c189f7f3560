from hsrdiff.provenance import stamp_snakemake_job, start_snakemake_job

start_snakemake_job(snakemake)

import pandas as pd

from hsrdiff.evaluation import summarise, write_table

rows = pd.concat([pd.read_csv(path) for path in snakemake.input.rows]).to_dict("records")
write_table(rows, snakemake.output.metrics)
summarise(snakemake.output.metrics, snakemake.output.summary_csv, snakemake.output.summary_md, snakemake.params.methods,
          split=snakemake.params.split)

stamp_snakemake_job(snakemake)
