# Progressive training: one rule per stage name (so that one stage can be forced alone, e.g.
# --forcerun train_stage2), for every trained method that has it (hsrdiff and the trained_methods
# in evaluation.methods), each stage starting from the previous stage's weights of its method
# (hsrdiff.methods.stage_plan lays the chain out).
# The declared output is the final weights file; checkpoints and the CSV log live in a folder
# passed as a param, so a job killed at its time limit keeps them and a rerun resumes.

for _name in STAGE_NAMES:

    rule:
        name:
            f"train_{_name}"
        input:
            unpack(train_inputs(_name)),
        output:
            weights=paths.fill(paths.WEIGHTS, stage=_name),
            curve=report(
                paths.fill(paths.LOSS_CURVE, stage=_name),
                caption="../report/loss.rst",
                category="{dataset}",
                subcategory="training",
            ),
        params:
            settings=train_settings(_name),
            checkpoint_dir=checkpoint_dir(_name),
            init=init_argument,
            launcher=train_launcher,
        conda:
            "../envs/hsrdiff.yaml"
        log:
            f"logs/train/{{dataset}}/{{method}}/{_name}.log",
        benchmark:
            f"benchmarks/train/{{dataset}}/{{method}}/{_name}.tsv"
        wildcard_constraints:
            method=methods_with_stage(_name),
        threads: 4
        resources:
            gpu=1,
            cpus_per_gpu=cpus_per_gpu,
            mem_mb=16000,
            runtime="12h",
        # `exec`: the training process takes the shell's place, so that SLURM's SIGTERM before
        # the time limit reaches it alone and a checkpoint is written (a shell would die first).
        # The log is appended to: a stage resubmitted after its time limit keeps each attempt's.
        shell:
            "exec {params.launcher} -m hsrdiff.cli train --settings {params.settings:q}"
            " --patches {input.patches} {params.init} --out {output.weights} --curve {output.curve}"
            " --checkpoint-dir {params.checkpoint_dir} >> {log} 2>&1"
