"""Trained methods ("runs"): hsrdiff itself and the variants of config ``variants``.

A variant overrides parts of ``model`` and ``training`` (its own ``stages``, ``mode``) so that one
workflow trains and compares several networks: the regression baseline, and the paper's
ablations (Table 2: u-net, no-sr-stream, cnn; Table 3: fixed-size patches), each a config overlay.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from hsrdiff.errors import ConfigError

BASELINES = ("cnmf", "bicubic")
MAIN = "hsrdiff"


def trained_runs(config: Mapping[str, Any]) -> list[str]:
    """The evaluation methods that are trained networks, checked against the variants."""
    runs = []
    for method in config["evaluation"]["methods"]:
        if method in BASELINES:
            continue
        if method != MAIN and method not in config.get("variants", {}):
            raise ConfigError(
                f"evaluation.methods lists '{method}', which is neither hsrdiff, a baseline ({', '.join(BASELINES)}) "
                f"nor a key of 'variants' ({', '.join(config.get('variants', {})) or 'none'})"
            )
        runs.append(method)
    return runs


def run_settings(config: Mapping[str, Any], run: str) -> dict:
    """``model``, ``training`` (with ``stages`` and ``mode``) and ``diffusion`` of one trained run."""
    model = copy.deepcopy(dict(config["model"]))
    training = copy.deepcopy(dict(config["training"]))
    training.setdefault("mode", "diffusion")
    if run != MAIN:
        if run not in config.get("variants", {}):
            raise ConfigError(f"'{run}' is not a trained method: expected hsrdiff or a key of 'variants'")
        override = config["variants"][run]
        model.update(override.get("model", {}))
        training.update({k: copy.deepcopy(v) for k, v in override.get("training", {}).items()})
    return {"model": model, "training": training, "diffusion": config["diffusion"]}


def run_stages(config: Mapping[str, Any], run: str) -> list[dict]:
    return run_settings(config, run)["training"]["stages"]
