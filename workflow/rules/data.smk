# Data stages: raw data -> prepared scenes -> simulated observations -> training patches.


rule download:
    output:
        raw=directory("resources/downloads/{dataset}"),
    params:
        source=download_source,
        options=config["download"],
        cache="resources/cache/{dataset}",
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "benchmarks/download/{dataset}.tsv"
    resources:
        mem_mb=1000,
        runtime="2h",
    script:
        "../scripts/download.py"


rule generate_demo:
    output:
        scenes="resources/generated/{dataset}/scenes.h5",
    params:
        settings=generator_settings,
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/generate_demo/{dataset}.log",
    benchmark:
        "benchmarks/generate_demo/{dataset}.tsv"
    resources:
        mem_mb=2000,
        runtime="10m",
    script:
        "../scripts/generate_demo.py"


rule prepare:
    input:
        raw=raw_input,
    output:
        hsi="resources/prepared/{dataset}/{scene}.h5",
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/prepare/{dataset}/{scene}.log",
    benchmark:
        "benchmarks/prepare/{dataset}/{scene}.tsv"
    resources:
        mem_mb=8000,
        runtime="30m",
    script:
        "../scripts/prepare.py"


rule degrade:
    input:
        hsi="resources/prepared/{dataset}/{scene}.h5",
    output:
        observations="resources/degraded/{dataset}/{scene}.h5",
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/degrade/{dataset}/{scene}.log",
    benchmark:
        "benchmarks/degrade/{dataset}/{scene}.tsv"
    resources:
        mem_mb=8000,
        runtime="30m",
    script:
        "../scripts/degrade.py"


rule patches:
    input:
        scenes=train_degraded,
    output:
        patches="resources/patches/{dataset}/p{size}.h5",
    params:
        options=config["patches"],
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/patches/{dataset}/p{size}.log",
    benchmark:
        "benchmarks/patches/{dataset}/p{size}.tsv"
    resources:
        mem_mb=8000,
        runtime="1h",
    script:
        "../scripts/patches.py"
