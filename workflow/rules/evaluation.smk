# Fusion of the test scenes by each method, metrics per scene, and the per-dataset tables.


rule sample:
    input:
        weights=final_weights_of,
        observations=paths.DEGRADED,
        base=sample_base,
    output:
        fused=paths.FUSED,
    params:
        schedule=config["diffusion"]["sample_schedule"],
        sampling=config["sampling"],
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/sample/{dataset}/{method}/{scene}.log",
    benchmark:
        "benchmarks/sample/{dataset}/{method}/{scene}.tsv"
    wildcard_constraints:
        method="|".join(TRAINED) or "NONE",
    threads: 4
    resources:
        gpu=1,
        cpus_per_gpu=cpus_per_gpu,
        mem_mb=16000,
        runtime="2h",
    script:
        "../scripts/sample.py"


rule bicubic:
    input:
        observations=paths.DEGRADED,
    output:
        fused=paths.fill(paths.FUSED, method="bicubic"),
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/bicubic/{dataset}/{scene}.log",
    benchmark:
        "benchmarks/bicubic/{dataset}/{scene}.tsv"
    resources:
        mem_mb=memory_mb(2000, 16),
        runtime="10m",
    script:
        "../scripts/bicubic.py"


rule cnmf:
    input:
        observations=paths.DEGRADED,
    output:
        fused=paths.fill(paths.FUSED, method="cnmf"),
    params:
        method="cnmf",
        settings=config["evaluation"]["cnmf"],
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/cnmf/{dataset}/{scene}.log",
    benchmark:
        "benchmarks/cnmf/{dataset}/{scene}.tsv"
    resources:
        mem_mb=memory_mb(2000, 16),
        runtime="2h",
    script:
        "../scripts/classical.py"


rule hysure:
    input:
        observations=paths.DEGRADED,
    output:
        fused=paths.fill(paths.FUSED, method="hysure"),
    params:
        method="hysure",
        settings=config["evaluation"]["hysure"],
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/hysure/{dataset}/{scene}.log",
    benchmark:
        "benchmarks/hysure/{dataset}/{scene}.tsv"
    resources:
        mem_mb=memory_mb(2000, 16),
        runtime="1h",
    script:
        "../scripts/classical.py"


rule hypersharpen:
    input:
        observations=paths.DEGRADED,
    output:
        fused=paths.FUSED,
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/hypersharpen/{dataset}/{method}/{scene}.log",
    benchmark:
        "benchmarks/hypersharpen/{dataset}/{method}/{scene}.tsv"
    wildcard_constraints:
        method="|".join(re.escape(m) for m in DETAIL_INJECTION),
    resources:
        mem_mb=memory_mb(2000, 16),
        runtime="10m",
    script:
        "../scripts/hypersharpen.py"


rule evaluate:
    input:
        fused=paths.FUSED,
        observations=paths.DEGRADED,
    output:
        row=paths.METRIC_ROW,
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/evaluate/{dataset}/{method}/{scene}.log",
    benchmark:
        "benchmarks/evaluate/{dataset}/{method}/{scene}.tsv"
    resources:
        mem_mb=memory_mb(2000, 24),
        runtime="10m",
    script:
        "../scripts/evaluate.py"


rule aggregate:
    input:
        rows=metric_rows,
    output:
        metrics=paths.METRICS,
        summary_csv=report(paths.SUMMARY_CSV, caption="../report/summary.rst", category="{dataset}", subcategory="tables"),
        summary_md=paths.SUMMARY_MD,
    params:
        methods=config["evaluation"]["methods"],
        split="test",
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/aggregate/{dataset}.log",
    benchmark:
        "benchmarks/aggregate/{dataset}.tsv"
    resources:
        mem_mb=2000,
        runtime="10m",
    script:
        "../scripts/aggregate.py"


# The validation scenes (training scenes held out of the patches), scored like the test scenes.
rule aggregate_validation:
    input:
        rows=validation_metric_rows,
    output:
        metrics=paths.VALIDATION_METRICS,
        summary_csv=report(paths.VALIDATION_SUMMARY_CSV, caption="../report/validation.rst", category="{dataset}",
                           subcategory="tables"),
        summary_md=paths.VALIDATION_SUMMARY_MD,
    params:
        methods=config["evaluation"]["methods"],
        split="validation",
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/aggregate_validation/{dataset}.log",
    benchmark:
        "benchmarks/aggregate_validation/{dataset}.tsv"
    resources:
        mem_mb=2000,
        runtime="10m",
    script:
        "../scripts/aggregate.py"


rule figures:
    input:
        observations=paths.DEGRADED,
        fused=fused_of_methods,
    output:
        composite=report(
            paths.fill(paths.FIGURE, figure="composite"),
            caption="../report/composite.rst",
            category="{dataset}",
            subcategory="false colour",
        ),
        errors=report(
            paths.fill(paths.FIGURE, figure="errors"),
            caption="../report/errors.rst",
            category="{dataset}",
            subcategory="error maps",
        ),
        spectra=report(
            paths.fill(paths.FIGURE, figure="spectra"),
            caption="../report/spectra.rst",
            category="{dataset}",
            subcategory="spectra",
        ),
    params:
        methods=config["evaluation"]["methods"],
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/figures/{dataset}/{scene}.log",
    benchmark:
        "benchmarks/figures/{dataset}/{scene}.tsv"
    resources:
        mem_mb=memory_mb(2000, 8),
        runtime="10m",
    script:
        "../scripts/figures.py"


rule generalise:
    input:
        weights=generalisation_weights,
        pair=generalisation_file,
    output:
        fused=paths.GENERALISED,
        consistency=report(
            paths.CONSISTENCY,
            caption="../report/consistency.rst",
            category="generalisation",
        ),
    params:
        pair=generalisation_settings,
        schedule=config["diffusion"]["sample_schedule"],
        sampling=config["sampling"],
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/generalise/{pair}.log",
    benchmark:
        "benchmarks/generalise/{pair}.tsv"
    threads: 4
    resources:
        gpu=1,
        cpus_per_gpu=cpus_per_gpu,
        mem_mb=16000,
        runtime="2h",
    script:
        "../scripts/generalise.py"


# A real pair (msi_variable): the pair itself fused by every compared method, judged without a
# reference (hsrdiff.realpair.full_resolution); the trained methods are those trained on it at
# reduced resolution.
rule full_resolution:
    input:
        unpack(full_resolution_inputs),
    output:
        fused=[paths.fill(paths.FULL_FUSED, method=m) for m in config["evaluation"]["methods"]],
        table_csv=report(paths.FULL_TABLE_CSV, caption="../report/full_resolution.rst", category="{dataset}",
                         subcategory="tables"),
        table_md=paths.FULL_TABLE_MD,
        figure=report(paths.FULL_FIGURE, caption="../report/full_resolution.rst", category="{dataset}",
                      subcategory="figures"),
    params:
        reader=reader_settings,
        methods=config["evaluation"]["methods"],
        trained=[m for m in config["evaluation"]["methods"] if m in TRAINED],
        schedule=config["diffusion"]["sample_schedule"],
        sampling={**config["sampling"], "n_samples": config["evaluation"]["full_resolution_samples"]},
        classical=classical_settings(config),
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/full_resolution/{dataset}.log",
    benchmark:
        "benchmarks/full_resolution/{dataset}.tsv"
    threads: 4
    resources:
        gpu=1,
        cpus_per_gpu=cpus_per_gpu,
        mem_mb=16000,
        runtime="2h",
    script:
        "../scripts/full_resolution.py"
