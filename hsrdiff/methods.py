"""Trained methods and their stage plans.

A *method* is anything the evaluation compares (``evaluation.methods``). Trained methods are
hsrdiff itself and the keys of ``trained_methods``, each overriding parts of ``model`` and
``training`` (its own ``stages``, ``mode``): the regression baseline and the paper's ablations
(architectures, the published Table 3: no-sr-stream, cnn, and u-net; progressive learning, Table 4:
fixed-size patches), one config overlay each.

:func:`stage_plan` is the one place where a trained method's chain of stages is laid out (patch
file, previous stage's weights, outputs, checkpoint folder, the settings the trainer reads): the
workflow's training rules and ``hsrdiff train`` both take it from there. No torch here: the
workflow imports this module to build its DAG.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hsrdiff import paths
from hsrdiff.errors import ConfigError

# The classical baselines by name, the one list of them (hsrdiff.baselines implements them; the
# workflow's fusion rules take their wildcards from here). Those with settings of their own
# (evaluation.<method>) also need the SRF; the detail-injection ones take lr_hsi, hr_msi and psf.
WITH_SETTINGS = ("cnmf", "hysure")
DETAIL_INJECTION = ("gsa", "glp-hs")
BASELINES = (*WITH_SETTINGS, *DETAIL_INJECTION, "bicubic")
MAIN = "hsrdiff"


def classical_settings(config: Mapping[str, Any]) -> dict:
    """The settings of the baselines that have their own (``evaluation.cnmf``,
    ``evaluation.hysure``), by method name, as :func:`hsrdiff.baselines.classical` takes them."""
    return {method: config["evaluation"][method] for method in WITH_SETTINGS}


def trained_methods(config: Mapping[str, Any]) -> list[str]:
    """The evaluation methods that are trained networks, checked against ``trained_methods``."""
    defined = config.get("trained_methods", {})
    found = []
    for method in config["evaluation"]["methods"]:
        if method in BASELINES:
            continue
        if method != MAIN and method not in defined:
            raise ConfigError(
                f"evaluation.methods lists '{method}', which is neither hsrdiff, a baseline ({', '.join(BASELINES)}) "
                f"nor a key of 'trained_methods' ({', '.join(defined) or 'none'})"
            )
        found.append(method)
    return found


def method_settings(config: Mapping[str, Any], method: str) -> dict:
    """``model``, ``training`` (with ``stages`` and ``mode``) and ``diffusion`` of one trained method."""
    model = copy.deepcopy(dict(config["model"]))
    training = copy.deepcopy(dict(config["training"]))
    training.setdefault("mode", "diffusion")  # hsrdiff's own; the schema has no `training.mode`
    if method != MAIN:
        if method not in config.get("trained_methods", {}):
            raise ConfigError(f"'{method}' is not a trained method: expected hsrdiff or a key of 'trained_methods'")
        override = config["trained_methods"][method]
        model.update(override.get("model", {}))
        training.update({k: copy.deepcopy(v) for k, v in override.get("training", {}).items()})
    return {"model": model, "training": training, "diffusion": config["diffusion"]}


def model_base_name(model: Mapping[str, Any]) -> str:
    """The base name (``hsrdiff.bases.base_name``) of a ``model`` config block or override."""
    from hsrdiff.bases import base_name

    try:
        return base_name(model.get("base", "bicubic"), int(model.get("base_consistency") or 0),
                         model.get("base_weight"))
    except ValueError as err:
        raise ConfigError(str(err)) from None


def patch_options(config: Mapping[str, Any]) -> dict:
    """The keyword arguments of ``extract_patches`` from a config: ``patches`` and the network bases
    (``model.base``, ``base_weight``, ``base_consistency``) of the trained methods, stored beside
    the patches."""
    models = [method_settings(config, m)["model"] for m in trained_methods(config)]
    bases = sorted({model_base_name(m) for m in models})
    return {"stride_fraction": config["patches"]["stride_fraction"], "max_per_scene": config["patches"]["max_per_scene"],
            "bases": bases}


def method_stages(config: Mapping[str, Any], method: str) -> list[dict]:
    return method_settings(config, method)["training"]["stages"]


@dataclass(frozen=True)
class PlannedStage:
    """One stage of a trained method on one dataset: what it reads, what it writes, its settings."""

    name: str
    patch_size: int | str
    patches: Path
    init_weights: Path | None  # the previous stage's weights; None for the first stage
    weights: Path
    loss_curve: Path
    checkpoint_dir: Path
    settings: dict  # {stage, model, training, diffusion: {train_schedule}, metadata}: the trainer's input


def stage_plan(config: Mapping[str, Any], dataset: str, ratio: int, method: str = MAIN) -> list[PlannedStage]:
    """The chain of stages of ``method`` on ``dataset`` (at resolution ratio ``ratio``), in order."""
    settings = method_settings(config, method)
    stages = settings["training"].pop("stages")
    names = [s["name"] for s in stages]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"the stages of '{method}' repeat the name(s) {', '.join(repeated)}; stage names must be unique")
    plan, previous = [], None
    for stage in stages:
        where = {"dataset": dataset, "method": method, "stage": stage["name"]}
        weights = paths.path(paths.WEIGHTS, **where)
        plan.append(PlannedStage(
            name=stage["name"],
            patch_size=stage["patch_size"],
            patches=paths.path(paths.PATCHES, dataset=dataset, size=stage["patch_size"]),
            init_weights=previous,
            weights=weights,
            loss_curve=paths.path(paths.LOSS_CURVE, **where),
            checkpoint_dir=paths.path(paths.CHECKPOINTS, **where),
            # Only the training schedule: the sampling schedule must not reach the training rules'
            # params, or a new step count for sampling would retrain every stage.
            settings={"stage": stage, "model": settings["model"], "training": settings["training"],
                      "diffusion": {"train_schedule": settings["diffusion"]["train_schedule"]},
                      "metadata": {"dataset": dataset, "ratio": int(ratio), "method": method}},
        ))
        previous = weights
    return plan


def planned_stage(config: Mapping[str, Any], dataset: str, ratio: int, method: str, stage: str) -> PlannedStage:
    plan = stage_plan(config, dataset, ratio, method)
    for planned in plan:
        if planned.name == stage:
            return planned
    raise ConfigError(f"no stage '{stage}' in the stages of '{method}'; stages: {', '.join(p.name for p in plan)}")
