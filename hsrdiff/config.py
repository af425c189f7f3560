"""Loading and validating the pipeline configuration.

The JSON schema in ``hsrdiff/schemas/config.schema.yaml`` is the single definition of every key,
its default and its meaning. Snakemake validates against the same file
(``workflow/schemas/config.schema.yaml`` links to it) and the CLI uses :func:`load_config`, so a
configuration behaves the same in both.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from hsrdiff.errors import ConfigError

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


# libyaml's parser where PyYAML was built with it: the schema takes 0.5 s to parse in pure
# Python, and the workflow reads it at every Snakemake start and in every cluster job.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=1)
def _parsed_schema() -> dict:
    return yaml.load(SCHEMA_PATH.read_text(), Loader=_YAML_LOADER)


def load_schema() -> dict:
    """The config schema, parsed once per process (a copy: callers may change it)."""
    return copy.deepcopy(_parsed_schema())


def _with_defaults(validator_class):
    """A validator class that fills in ``default`` values while it validates.

    jsonschema descends into nested objects (registry entries under ``additionalProperties``
    included) with the same class, so defaults are filled at every depth.
    """
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _where(error: jsonschema.ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "<top level>"


def validate_config(config: Mapping[str, Any], source: str = "config") -> dict:
    """Return a validated deep copy of ``config`` with every default filled in.

    Raises :class:`ConfigError` naming the key path and what was expected.
    """
    check_renamed_keys(config, source)
    schema = load_schema()
    instance = copy.deepcopy(dict(config))
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:10]:
            # A oneOf failure hides the useful detail one level down.
            detail = err.message
            if err.context:
                detail += " (" + "; ".join(sorted({c.message for c in err.context})) + ")"
            lines.append(f"  {_where(err)}: {detail}")
        raise ConfigError(f"{source}: invalid configuration:\n" + "\n".join(lines))
    return instance


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    with open(path) as fh:
        try:
            data = yaml.load(fh, Loader=_YAML_LOADER) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(path: str | Path | list, overrides: Mapping[str, Any] | None = None) -> dict:
    """Read a YAML configuration file, or several deep-merged in order (as Snakemake's
    ``--configfile a.yaml b.yaml``), apply ``overrides`` (deep-merged) and validate the result."""
    files = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    data: dict = {}
    for file in files:
        data = deep_merge(data, _read_yaml(file))
    if overrides:
        data = deep_merge(data, overrides)
    return validate_config(data, source=" + ".join(map(str, files)))


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict:
    """Merge ``update`` into a copy of ``base``, recursing into mappings (as Snakemake does)."""
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def schema_defaults(*where: str) -> dict[str, Any]:
    """The ``default`` of each property of the schema object at ``where`` (a path of keys from
    the schema's root, e.g. ``("properties", "training")``): code fills missing keys from here
    instead of restating the defaults."""
    node = load_schema()
    for key in where:
        node = node[key]
    return {name: copy.deepcopy(sub["default"]) for name, sub in node.get("properties", {}).items() if "default" in sub}


def check_renamed_keys(config: Mapping[str, Any], source: str = "config") -> None:
    """Name the new key of a renamed one, rather than the schema's bare 'unexpected key'."""
    if "variants" in config:
        raise ConfigError(f"{source}: the key 'variants' is now 'trained_methods' (same content), and a method's "
                          "model.variant is now model.architecture")
    if isinstance(config.get("model"), Mapping) and "variant" in config["model"]:
        raise ConfigError(f"{source}: the key model.variant is now model.architecture")


def check_consistency(config: Mapping[str, Any], source: str = "config") -> list[str]:
    """What the schema cannot see and would otherwise fail jobs later (``config`` validated).

    Checks each active dataset's source and SRF table, each trained method's stages against the
    dataset's ratio, and the sampling tiles; raises :class:`ConfigError` naming the key, returns
    one line per active dataset.
    """
    import numpy as np

    from hsrdiff.data.registry import DatasetSpec
    from hsrdiff.errors import HsrdiffError
    from hsrdiff.methods import stage_plan, trained_methods
    from hsrdiff.srf import read_response, srf_matrix

    methods = trained_methods(config)
    sampling = config["sampling"]
    lines = []
    for name in config["active_datasets"]:
        spec = DatasetSpec.from_config(config, name)
        key = f"datasets.{name}"
        location = spec.raw_location()
        if spec.source_kind == "path" and not location.exists():
            raise ConfigError(f"{source}: {key}.source.path: {location} does not exist (from {Path.cwd()})")
        srf = spec.degradation_settings()["srf"]
        estimated = [k for k in ("psf", "srf") if spec.entry.get(k) == "estimate"]
        if spec.entry.get("msi_variable") and srf != "estimate":
            raise ConfigError(f"{source}: {key}.msi_variable: a real pair's response is fitted from it: set srf: estimate "
                              f"(and psf: estimate when the MSI is ratio times the HSI's size); {key} sets srf {srf!r}")
        if estimated and not spec.entry.get("msi_variable"):
            raise ConfigError(f"{source}: {key}.{estimated[0]}: 'estimate' fits the operator from a real pair; set "
                              f"{key}.msi_variable to the file's MSI variable, or name a response")
        try:
            if srf != "estimate":
                response = read_response(srf)
                wavelengths = spec.entry.get("wavelengths") or {}
                if {"start", "stop", "count"} <= set(wavelengths):
                    srf_matrix(response, np.linspace(wavelengths["start"], wavelengths["stop"], int(wavelengths["count"])))
        except HsrdiffError as exc:
            raise ConfigError(f"{source}: {key}.srf ({srf}): {exc}") from exc
        ratio = spec.ratio
        for method in methods:
            for planned in stage_plan(config, name, ratio, method):
                if planned.patch_size != "full" and int(planned.patch_size) % ratio:
                    raise ConfigError(f"{source}: stage '{planned.name}' of {method}: patch_size {planned.patch_size} is not a "
                                      f"multiple of dataset {name}'s ratio {ratio}")
        tile, overlap = sampling.get("tile"), int(sampling.get("overlap") or 0)
        if tile is not None and (tile % ratio or overlap % ratio or overlap >= tile):
            raise ConfigError(f"{source}: sampling.tile {tile} and sampling.overlap {overlap} must be multiples of dataset "
                              f"{name}'s ratio {ratio}, with overlap < tile")
        pair = " (a real pair: its operators estimated from it)" if spec.entry.get("msi_variable") else ""
        held = f", {len(spec.validation_scenes)} validation" if spec.validation_scenes else ""
        lines.append(f"{name}: {len(spec.train_scenes)} train{held}, {len(spec.test_scenes)} test scenes, ratio {ratio}, "
                     f"source {spec.source_kind} ({location}){pair}")
    return lines
