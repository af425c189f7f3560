# Data stages: raw data -> prepared scenes -> simulated observations -> training patches.


rule download:
    output:
        raw=directory(paths.DOWNLOAD),
    params:
        source=download_source,
        options=config["download"],
        cache=paths.DOWNLOAD_CACHE,
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
        scenes=paths.GENERATED,
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
        hsi=paths.PREPARED,
    params:
        scene=scene_settings,
        reader=reader_settings,
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/prepare/{dataset}/{scene}.log",
    benchmark:
        "benchmarks/prepare/{dataset}/{scene}.tsv"
    resources:
        mem_mb=memory_mb(8000, 0),
        runtime="30m",
    script:
        "../scripts/prepare.py"


rule degrade:
    input:
        hsi=paths.PREPARED,
    output:
        observations=paths.DEGRADED,
    params:
        scene=scene_settings,
        degradation=degradation_settings,
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/degrade/{dataset}/{scene}.log",
    benchmark:
        "benchmarks/degrade/{dataset}/{scene}.tsv"
    resources:
        mem_mb=memory_mb(2000, 16),
        runtime="30m",
    script:
        "../scripts/degrade.py"


# One network base of one scene (hsrdiff.baselines.fusion_base), for the patch files and the sample
# jobs alike: computed once, and in parallel, instead of in each patch file and sampled image.
rule base:
    input:
        unpack(base_inputs),
    output:
        base=paths.BASE,
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/base/{dataset}/{base}/{scene}.log",
    benchmark:
        "benchmarks/base/{dataset}/{base}/{scene}.tsv"
    resources:
        mem_mb=memory_mb(2000, 16),
        runtime="2h",
    script:
        "../scripts/base.py"


rule patches:
    input:
        scenes=train_degraded,
        bases=train_bases,
    output:
        patches=paths.PATCHES,
    params:
        options=patch_options(config),
    conda:
        "../envs/hsrdiff.yaml"
    log:
        "logs/patches/{dataset}/p{size}.log",
    benchmark:
        "benchmarks/patches/{dataset}/p{size}.tsv"
    resources:
        mem_mb=memory_mb(8000, 0),
        runtime="1h",
    script:
        "../scripts/patches.py"
