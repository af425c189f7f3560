# Progressive training: one rule per stage of config training.stages (so that one stage can be
# forced alone, e.g. --forcerun train_stage2), each starting from the previous stage's weights.
# The declared output is the final weights file; checkpoints and the CSV log live in a folder
# passed as a param, so a job killed at its time limit keeps them and a rerun resumes.

for _index, _stage in enumerate(STAGES):

    rule:
        name:
            f"train_{_stage['name']}"
        input:
            unpack(train_inputs(_index)),
        output:
            weights=f"results/{{dataset}}/models/{{run}}/{_stage['name']}.pt",
            curve=report(
                f"results/{{dataset}}/models/{{run}}/{_stage['name']}_loss.png",
                caption="../report/loss.rst",
                category="{dataset}",
                subcategory="training",
            ),
        params:
            settings=train_settings(_index),
            checkpoint_dir=f"results/{{dataset}}/checkpoints/{{run}}/{_stage['name']}",
            init=init_argument,
            launcher=train_launcher,
        conda:
            "../envs/hsrdiff.yaml"
        log:
            f"logs/train/{{dataset}}/{{run}}/{_stage['name']}.log",
        benchmark:
            f"benchmarks/train/{{dataset}}/{{run}}/{_stage['name']}.tsv"
        threads: 4
        resources:
            gpu=1,
            mem_mb=16000,
            runtime="12h",
        shell:
            "{params.launcher} -m hsrdiff.cli train --settings {params.settings:q}"
            " --patches {input.patches} {params.init} --out {output.weights} --curve {output.curve}"
            " --checkpoint-dir {params.checkpoint_dir} > {log} 2>&1"
