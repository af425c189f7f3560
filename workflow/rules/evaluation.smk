# Fusion of the test scenes by each method, metrics per scene, and the per-dataset tables.


rule sample:
    input:
        weights=final_weights_of,
        observations="resources/degraded/{dataset}/{scene}.h5",
    output:
        fused="results/{dataset}/fused/{run}/{scene}.h5",
    params:
        schedule=config["diffusion"]["sample_schedule"],
        sampling=config["sampling"],
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/sample/{dataset}/{run}/{scene}.log",
    benchmark:
        "benchmarks/sample/{dataset}/{run}/{scene}.tsv"
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
        observations="resources/degraded/{dataset}/{scene}.h5",
    output:
        fused="results/{dataset}/fused/bicubic/{scene}.h5",
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/bicubic/{dataset}/{scene}.log",
    benchmark:
        "benchmarks/bicubic/{dataset}/{scene}.tsv"
    resources:
        mem_mb=4000,
        runtime="10m",
    script:
        "../scripts/bicubic.py"


rule cnmf:
    input:
        observations="resources/degraded/{dataset}/{scene}.h5",
    output:
        fused="results/{dataset}/fused/cnmf/{scene}.h5",
    params:
        settings=config["evaluation"]["cnmf"],
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/cnmf/{dataset}/{scene}.log",
    benchmark:
        "benchmarks/cnmf/{dataset}/{scene}.tsv"
    resources:
        mem_mb=16000,
        runtime="2h",
    script:
        "../scripts/cnmf.py"


rule evaluate:
    input:
        fused="results/{dataset}/fused/{method}/{scene}.h5",
        observations="resources/degraded/{dataset}/{scene}.h5",
    output:
        row="results/{dataset}/metrics/{method}/{scene}.csv",
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/evaluate/{dataset}/{method}/{scene}.log",
    benchmark:
        "benchmarks/evaluate/{dataset}/{method}/{scene}.tsv"
    resources:
        mem_mb=4000,
        runtime="10m",
    script:
        "../scripts/evaluate.py"


rule aggregate:
    input:
        rows=metric_rows,
    output:
        metrics="results/{dataset}/metrics.csv",
        summary_csv=report("results/{dataset}/summary.csv", caption="../report/summary.rst", category="{dataset}", subcategory="tables"),
        summary_md="results/{dataset}/summary.md",
    params:
        methods=config["evaluation"]["methods"],
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


rule figures:
    input:
        observations="resources/degraded/{dataset}/{scene}.h5",
        fused=fused_of_methods,
    output:
        composite=report(
            "results/{dataset}/figures/{scene}_composite.png",
            caption="../report/composite.rst",
            category="{dataset}",
            subcategory="false colour",
        ),
        errors=report(
            "results/{dataset}/figures/{scene}_errors.png",
            caption="../report/errors.rst",
            category="{dataset}",
            subcategory="error maps",
        ),
        spectra=report(
            "results/{dataset}/figures/{scene}_spectra.png",
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
        mem_mb=4000,
        runtime="10m",
    script:
        "../scripts/figures.py"


rule generalise:
    input:
        weights=generalisation_weights,
        pair=generalisation_file,
    output:
        fused="results/generalisation/{pair}/fused.h5",
        consistency=report(
            "results/generalisation/{pair}/consistency.csv",
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
