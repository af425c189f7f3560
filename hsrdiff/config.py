"""Loading and validating the pipeline configuration.

The JSON schema in ``hsrdiff/schemas/config.schema.yaml`` is the single definition of every key,
its default and its meaning. Snakemake validates against the same file
(``workflow/schemas/config.schema.yaml`` links to it) and the CLI uses :func:`load_config`, so a
configuration behaves the same in both.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from hsrdiff.errors import ConfigError

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


def load_schema() -> dict:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


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


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict:
    """Read a YAML configuration file, apply ``overrides`` (deep-merged) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    with open(path) as fh:
        try:
            data = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    if overrides:
        data = deep_merge(data, overrides)
    return validate_config(data, source=str(path))


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
