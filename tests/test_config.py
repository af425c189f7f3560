"""Configuration: schema defaults, unknown keys, registry consistency; the CLI's errors."""

import copy

import pytest
import yaml

from conftest import REPO
from hsrdiff.cli import main
from hsrdiff.config import load_config, validate_config
from hsrdiff.data.registry import DatasetSpec
from hsrdiff.errors import ConfigError


def test_shipped_config_is_valid_and_complete(default_config):
    config = validate_config(default_config)
    assert config["active_datasets"] == ["demo"]
    cave = DatasetSpec.from_config(config, "cave")
    assert len(cave.train_scenes) == 20 and len(cave.test_scenes) == 12
    # the paper's split (CMHF-Net's index list), not the alphabetical one
    assert cave.test_scenes == ["balloons", "cd", "chart_and_stuffed_toy", "clay", "fake_and_real_beers",
                                "fake_and_real_lemon_slices", "fake_and_real_tomatoes", "feathers", "flowers", "hairs",
                                "jelly_beans", "watercolors"]
    assert "beads" in cave.train_scenes and "thread_spools" in cave.train_scenes and cave.ratio == 32
    assert cave.entry["psf"] == {"mode": "block", "sigma": 10, "size": None, "offset": None, "kernel_file": None}
    chikusei = DatasetSpec.from_config(config, "chikusei")
    assert len(chikusei.entry["bands"]) == 110 and len(chikusei.test_scenes) == 8
    pavia = DatasetSpec.from_config(config, "paviau")
    assert pavia.scene("test_top_left").region == (0, 128, 0, 128)
    demo = DatasetSpec.from_config(config, "demo")
    assert demo.source_kind == "generate" and len(demo.train_scenes) == 16 and len(demo.test_scenes) == 4


def test_every_schema_key_has_a_description():
    from hsrdiff.config import load_schema

    missing = []

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            if "description" not in sub:
                missing.append(f"{path}/{key}")
            walk(sub, f"{path}/{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}/*")

    schema = load_schema()
    walk(schema, "")
    walk(schema["$defs"]["dataset"], "datasets/*")
    assert not missing, missing


def test_unknown_key_is_an_error_naming_its_path(default_config):
    bad = copy.deepcopy(default_config)
    bad["datasets"]["demo"]["ratoi"] = 4
    with pytest.raises(ConfigError, match=r"datasets/demo: Additional properties are not allowed \('ratoi' was unexpected\)"):
        validate_config(bad)
    bad = copy.deepcopy(default_config)
    bad["training"]["stages"][0]["patchsize"] = 32
    with pytest.raises(ConfigError, match="training/stages/0.*'patchsize' was unexpected"):
        validate_config(bad)


def test_wrong_type_names_the_key(default_config):
    bad = copy.deepcopy(default_config)
    bad["datasets"]["cave"]["ratio"] = "32"
    with pytest.raises(ConfigError, match="datasets/cave/ratio: '32' is not of type 'integer'"):
        validate_config(bad)


def test_overlapping_train_and_test_regions_are_refused(default_config):
    bad = copy.deepcopy(default_config)
    bad["datasets"]["paviau"]["scenes"]["train"][0]["region"] = [0, 128, 100, 340]
    with pytest.raises(ConfigError, match="training region .* of 'train_right' overlaps test region"):
        DatasetSpec.from_config(validate_config(bad), "paviau")


def test_validation_scenes_are_training_scenes_held_out_of_the_patches(default_config):
    config = copy.deepcopy(default_config)
    config["datasets"]["demo"]["scenes"] = {"validation": ["train_14", "train_15"]}
    demo = DatasetSpec.from_config(validate_config(config), "demo")
    assert demo.validation_scenes == ["train_14", "train_15"]
    assert len(demo.train_scenes) == 14 and "train_14" not in demo.train_scenes and len(demo.test_scenes) == 4
    # prepare and degrade see a held-out scene as any training scene: holding it out reruns neither
    assert demo.scene("train_14").split == "train"
    plain = DatasetSpec.from_config(validate_config(default_config), "demo")
    assert demo.reader_settings() == plain.reader_settings() and demo.degradation_settings() == plain.degradation_settings()

    config["datasets"]["demo"]["scenes"] = {"validation": ["test_00"]}
    with pytest.raises(ConfigError, match=r"scenes.validation: test_00 is not a training scene.*never test scenes"):
        DatasetSpec.from_config(validate_config(config), "demo")
    config["datasets"]["paviau"]["scenes"]["validation"] = ["train_right", "train_bottom"]
    with pytest.raises(ConfigError, match="paviau.scenes.validation holds out every training scene"):
        DatasetSpec.from_config(validate_config(config), "paviau")


def test_dataset_without_a_source_says_what_to_provide(default_config):
    spec = DatasetSpec.from_config(validate_config(default_config), "hypsen")
    with pytest.raises(ConfigError, match="HypSen has no public download"):
        spec.raw_location()
    with pytest.raises(ConfigError, match="dataset 'nope' is not in the registry"):
        DatasetSpec.from_config(validate_config(default_config), "nope")


def test_cli_reports_config_errors_without_a_traceback(tmp_path, capsys, default_config):
    bad = copy.deepcopy(default_config)
    bad["typo_key"] = 1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert main(["validate-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "'typo_key' was unexpected" in err and "Traceback" not in err
    assert main(["validate-config", str(REPO / "config" / "config.yaml")]) == 0
    assert "demo: 16 train, 4 test scenes, ratio 4" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", ["cave", "paviau", "chikusei"])
def test_paper_configs_are_valid_overlays(name, default_config):
    from hsrdiff.config import deep_merge

    with open(REPO / "config" / "paper" / f"{name}.yaml") as fh:
        overlay = yaml.safe_load(fh)
    config = validate_config(deep_merge(default_config, overlay))
    assert config["active_datasets"] == [name]
    assert config["model"]["channels"] == 256
    stages = config["training"]["stages"]
    # the published progressive sizes and batches (paper-published-facts.md)
    sizes = {"cave": [128, "full"], "paviau": [64, 128], "chikusei": [128, 512]}[name]
    assert [s["patch_size"] for s in stages] == sizes
    assert [s["batch_size"] for s in stages] == ([4, 4] if name == "paviau" else [4, 2])
    assert stages[-1]["trainable"] == "second_half" and all(s["learning_rate"] == 1e-4 for s in stages)
    ratio = config["datasets"][name]["ratio"]
    assert all(s["patch_size"] == "full" or s["patch_size"] % ratio == 0 for s in stages)


OVERLAYS = sorted(str(p.relative_to(REPO / "config")) for p in (REPO / "config").glob("*/*.yaml"))


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_shipped_overlay_validates_with_its_stage_plans(name, default_config):
    """Each overlay the docs tell users to run (bench, ablation, paper, real) is valid after
    config.yaml (and cave.yaml for the GPU variants of the CAVE benchmark), and every trained
    method it compares has a stage chain whose patch sizes suit its dataset's ratio."""
    from hsrdiff.config import deep_merge
    from hsrdiff.methods import stage_plan, trained_methods

    config = default_config
    chain = ["bench/cave.yaml"] if name.startswith("bench/cave-") else []
    for part in chain + [name]:
        config = deep_merge(config, yaml.safe_load((REPO / "config" / part).read_text()))
    config = validate_config(config)
    for dataset in config["active_datasets"]:
        ratio = int(config["datasets"][dataset]["ratio"])
        for method in trained_methods(config):
            plan = stage_plan(config, dataset, ratio, method)
            assert plan and all(s.patch_size == "full" or s.patch_size % ratio == 0 for s in plan), (name, method)


def test_renamed_keys_name_their_new_spelling(default_config):
    old = {**copy.deepcopy(default_config), "variants": {"unet": {"model": {"variant": "u-net"}}}}
    with pytest.raises(ConfigError, match="'variants' is now 'trained_methods'"):
        validate_config(old)
    old = {**copy.deepcopy(default_config), "model": {"variant": "cnn"}}
    with pytest.raises(ConfigError, match="model.variant is now model.architecture"):
        validate_config(old)


def test_stage_plan_chains_the_stages_of_a_method(default_config):
    from hsrdiff.methods import stage_plan

    config = validate_config(default_config)
    plan = stage_plan(config, "demo", 4, "regression")
    assert [p.name for p in plan] == ["stage1", "stage2", "stage3"]
    assert plan[0].init_weights is None and plan[1].init_weights == plan[0].weights
    assert str(plan[2].weights) == "results/demo/models/regression/stage3.pt"
    assert str(plan[2].patches) == "resources/patches/demo/pfull.h5"
    assert plan[2].settings["training"]["mode"] == "regression" and "sample_schedule" not in plan[2].settings["diffusion"]
    config["training"]["stages"].append(dict(config["training"]["stages"][0]))
    with pytest.raises(ConfigError, match="repeat the name"):
        stage_plan(config, "demo", 4)


def test_the_patch_files_hold_the_base_of_each_trained_method(default_config):
    """The patches rule stores one base per distinct network base, named as the trainer reads it:
    a mean base with its weight, and a single base without the weight an overlay leaves set."""
    from hsrdiff.methods import patch_options

    config = copy.deepcopy(default_config)
    config["model"] = {"base": "glp-hs+cnmf", "base_weight": 0.75, "base_consistency": 20}
    config["trained_methods"] = {"regression": {"model": {"base": "glp-hs"}, "training": {"mode": "regression"}},
                                 "even": {"model": {"base_weight": 0.5}}}
    config["evaluation"] = {"methods": ["hsrdiff", "regression", "even", "cnmf"]}
    assert patch_options(validate_config(config))["bases"] == ["glp-hs+cnmf+p20", "glp-hs+cnmf@0.75+p20", "glp-hs+p20"]
    config["model"]["base_weight"] = 1.5
    with pytest.raises(ConfigError, match="base_weight"):
        validate_config(config)


def test_a_trained_method_overrides_the_loss_weights(default_config):
    from hsrdiff.methods import stage_plan
    from hsrdiff.training.settings import TrainingSettings

    overlay = {"trained_methods": {"angle": {"training": {"loss": {"lambda_sam": 0.5}}}}}
    config = validate_config({**copy.deepcopy(default_config), **overlay})
    angle = TrainingSettings.from_dict(stage_plan(config, "demo", 4, "angle")[0].settings["training"])
    main_method = TrainingSettings.from_dict(stage_plan(config, "demo", 4)[0].settings["training"])
    assert (angle.lambda_sam, angle.lambda_lr, angle.lambda_msi) == (0.5, 1.0, 1.0)
    assert main_method.lambda_sam == 0.0
    assert TrainingSettings.from_dict(angle.to_dict()) == angle
    # an override's keys are checked as the main ones are, when the config is read, not at training
    for bad, message in (({"loss": {"lamda_sam": 1}}, "'lamda_sam' was unexpected"),
                         ({"lr_schedule": {"decay": "linear"}}, "'linear' is not one of")):
        wrong = {**copy.deepcopy(default_config), "trained_methods": {"angle": {"training": bad}}}
        with pytest.raises(ConfigError, match=message):
            validate_config(wrong)


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return str(path)


# Each overlay (on the shipped config) fails a job later if validate-config lets it through.
LATE_FAILURES = {
    "missing source path": ({"active_datasets": ["cave"], "datasets": {"cave": {"source": {"path": "/nonexistent/cave"}}}},
                            "datasets.cave.source.path: /nonexistent/cave does not exist"),
    "missing SRF file": ({"datasets": {"demo": {"srf": "/nonexistent/my_camera.csv"}}}, "datasets.demo.srf"),
    "malformed SRF CSV": ("malformed", "expected numeric CSV rows"),
    "SRF outside the wavelengths": ({"active_datasets": ["paviau"],
                                     "datasets": {"paviau": {"wavelengths": {"start": 1500, "stop": 2400, "count": 103}}}},
                                    "no band centre lies inside the HSI range 1500-2400"),
    "patch size vs ratio": ({"training": {"stages": [{"name": "s1", "patch_size": 30, "batch_size": 4, "iterations": 10,
                                                      "learning_rate": 1e-3, "trainable": "all"}]}},
                            "patch_size 30 is not a multiple of dataset demo's ratio 4"),
    "tile vs ratio": ({"sampling": {"tile": 66, "overlap": 8}}, "sampling.tile 66 and sampling.overlap 8 must be multiples"),
    "overlap not below the tile": ({"sampling": {"tile": 64, "overlap": 64}}, "with overlap < tile"),
    "repeated stage names": ({"training": {"stages": [
        {"name": "s1", "patch_size": 32, "batch_size": 4, "iterations": 10, "learning_rate": 1e-3, "trainable": "all"},
        {"name": "s1", "patch_size": 64, "batch_size": 4, "iterations": 10, "learning_rate": 1e-3, "trainable": "all"}]}},
        "repeat the name\\(s\\) s1"),
    "unknown method": ({"evaluation": {"methods": ["hsrdiff", "sfim"]}}, "lists 'sfim', which is neither"),
}


@pytest.mark.parametrize("case", sorted(LATE_FAILURES))
def test_validate_config_catches_what_would_fail_later(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    overlay, expected = LATE_FAILURES[case]
    if overlay == "malformed":
        srf = tmp_path / "camera.csv"
        srf.write_text("wavelength_nm,r,g,b\n400,0.1,0.2,x\n")
        overlay = {"datasets": {"demo": {"srf": str(srf)}}}
    code = main(["validate-config", "config/config.yaml", _write(tmp_path / "my.yaml", overlay)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert __import__("re").search(expected, err), err


def test_validate_config_merges_overlays_in_order_as_snakemake_does(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    first = _write(tmp_path / "a.yaml", {"sampling": {"tile": 30, "overlap": 0}})  # bad alone
    second = _write(tmp_path / "b.yaml", {"sampling": {"tile": 64}})                # fixed by the next file
    assert main(["validate-config", "config/config.yaml", first]) == 2
    assert main(["validate-config", "config/config.yaml", first, second]) == 0
    out = capsys.readouterr().out
    assert f"config/config.yaml + {first} + {second}: valid" in out
    config = load_config([REPO / "config" / "config.yaml", first, second])
    assert config["sampling"]["tile"] == 64 and config["sampling"]["overlap"] == 0
    assert config["active_datasets"] == ["demo"]  # kept from the first file
