"""The dataset registry: a validated config entry turned into something the stages can use.

An entry holds two groups of settings that different stages use: how to read the raw data
(:meth:`DatasetSpec.reader_settings`, the prepare stage's) and how to simulate the observations
(:meth:`DatasetSpec.degradation_settings`, the degrade stage's). The workflow passes each group to
its rule as a param, so that changing one reruns that stage and what follows, and nothing before.
File locations come from :mod:`hsrdiff.paths`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from hsrdiff import paths
from hsrdiff.errors import ConfigError

# Keys of a registry entry that the degrade stage reads; the prepare stage reads the others
# (except `source`, whose data arrive as prepare's input, and `scenes`, resolved per scene).
DEGRADATION_KEYS = ("ratio", "psf", "srf", "noise")
# Changed whenever the simulation itself changes: it is part of the degrade rule's params, so the
# workflow re-simulates instead of mixing files of two observation models.
OBSERVATION_MODEL = "2: LR pixels centred on their blocks in every PSF mode"
NOT_READER_KEYS = (*DEGRADATION_KEYS, "description", "source", "scenes")


@dataclass(frozen=True)
class Scene:
    """One image of a dataset: a file (or a region of one) and its split."""

    name: str
    split: str  # "train" or "test"
    region: tuple[int, int, int, int] | None = None  # row_start, row_stop, col_start, col_stop
    file_key: str | None = None

    @property
    def key(self) -> str:
        return self.file_key or self.name

    def to_dict(self) -> dict:
        """Plain values (a workflow param); :meth:`from_dict` rebuilds the scene."""
        return {"name": self.name, "split": self.split, "region": None if self.region is None else list(self.region),
                "file_key": self.file_key}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Scene":
        region = data.get("region")
        return cls(data["name"], data["split"], None if region is None else tuple(region), data.get("file_key"))


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset registry entry with its scenes resolved."""

    name: str
    entry: Mapping[str, Any] = field(repr=False)
    scenes: tuple[Scene, ...]
    # Training scenes kept out of the patches, to choose settings on (scenes.validation). They
    # keep split "train": prepare and degrade treat them as any training scene, so holding one
    # out reruns only the patches and what follows.
    validation: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], name: str) -> "DatasetSpec":
        registry = config.get("datasets", {})
        if name not in registry:
            known = ", ".join(sorted(registry)) or "none"
            raise ConfigError(f"dataset '{name}' is not in the registry (config key 'datasets'); known: {known}")
        entry = registry[name]
        scenes = _resolve_scenes(name, entry)
        validation = _resolve_validation(name, entry, scenes)
        return cls(name=name, entry=entry, scenes=scenes, validation=validation)

    # -- the split ---------------------------------------------------------------------------
    @property
    def train_scenes(self) -> list[str]:
        """The scenes training patches are cut from (the validation scenes left out)."""
        return [s.name for s in self.scenes if s.split == "train" and s.name not in self.validation]

    @property
    def validation_scenes(self) -> list[str]:
        return list(self.validation)

    @property
    def test_scenes(self) -> list[str]:
        return [s.name for s in self.scenes if s.split == "test"]

    def scene(self, name: str) -> Scene:
        for s in self.scenes:
            if s.name == name:
                return s
        raise ConfigError(f"dataset '{self.name}' has no scene '{name}'; scenes: {', '.join(s.name for s in self.scenes)}")

    # -- where the raw data come from ---------------------------------------------------------
    @property
    def ratio(self) -> int:
        return int(self.entry["ratio"])

    @property
    def source(self) -> Mapping[str, Any]:
        return self.entry["source"]

    @property
    def source_kind(self) -> str:
        """'path' (local data), 'generate' (the demo), 'url' (download) or 'missing'."""
        if self.source.get("path"):
            return "path"
        if self.source.get("generate") is not None:
            return "generate"
        if self.source.get("url"):
            return "url"
        return "missing"

    def raw_location(self) -> Path:
        """The file or folder the reader starts from."""
        kind = self.source_kind
        if kind == "path":
            return Path(self.source["path"]).expanduser()
        if kind == "generate":
            return paths.path(paths.GENERATED, dataset=self.name)
        if kind == "url":
            return paths.path(paths.DOWNLOAD, dataset=self.name)
        hint = self.source.get("instructions") or "set datasets.<name>.source.path to the data on disk"
        raise ConfigError(f"dataset '{self.name}' has no source (config datasets.{self.name}.source): {hint}")

    # -- the settings of each data stage ------------------------------------------------------
    def reader_settings(self) -> dict:
        """How to read the raw data (format, variable, axes, wavelengths, crop, bands, scale); for
        a real pair (``msi_variable``) also the ratio and the PSF setting, which place the MSI's
        regions and say whether prepare estimates the blur."""
        settings = {k: v for k, v in self.entry.items() if k not in NOT_READER_KEYS}
        if self.entry.get("msi_variable"):
            settings.update(ratio=self.ratio, psf=self.entry.get("psf"))
        return settings

    def degradation_settings(self) -> dict:
        """How to simulate the observations: ``ratio``, ``psf``, ``srf``, ``noise`` (and the model's version)."""
        return {**{k: self.entry.get(k) for k in DEGRADATION_KEYS}, "observation_model": OBSERVATION_MODEL}

    # -- files of each stage -------------------------------------------------------------------
    def prepared_path(self, scene: str) -> Path:
        return paths.path(paths.PREPARED, dataset=self.name, scene=scene)

    def degraded_path(self, scene: str) -> Path:
        return paths.path(paths.DEGRADED, dataset=self.name, scene=scene)

    def patches_path(self, patch_size: int | str) -> Path:
        return paths.path(paths.PATCHES, dataset=self.name, size=patch_size)


def _resolve_scenes(name: str, entry: Mapping[str, Any]) -> tuple[Scene, ...]:
    generate = entry["source"].get("generate")
    if generate is not None:
        from hsrdiff.data.demo import scene_names

        train, test = scene_names(generate)
        return tuple([Scene(n, "train") for n in train] + [Scene(n, "test") for n in test])

    scenes: list[Scene] = []
    for split in ("train", "test"):
        for item in entry["scenes"].get(split, []):
            if isinstance(item, str):
                scenes.append(Scene(item, split))
            else:
                region = item.get("region")
                if region is not None:
                    r0, r1, c0, c1 = region
                    if r1 <= r0 or c1 <= c0:
                        raise ConfigError(
                            f"datasets.{name}.scenes.{split}: region {region} of scene '{item['name']}' "
                            "is empty; expected [row_start, row_stop, col_start, col_stop] with stop > start"
                        )
                    region = (r0, r1, c0, c1)
                scenes.append(Scene(item["name"], split, region, item.get("file_key")))
    if not scenes:
        raise ConfigError(f"datasets.{name}.scenes: no train or test scenes listed")
    names = [s.name for s in scenes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"datasets.{name}.scenes: scene names must be unique; repeated: {', '.join(dupes)}")
    _check_regions_disjoint(name, entry, scenes)
    return tuple(scenes)


def _resolve_validation(name: str, entry: Mapping[str, Any], scenes: tuple[Scene, ...]) -> tuple[str, ...]:
    """scenes.validation: names of training scenes, at least one training scene left to train on."""
    held = list(entry.get("scenes", {}).get("validation", []))
    train = [s.name for s in scenes if s.split == "train"]
    unknown = [v for v in held if v not in train]
    if unknown:
        raise ConfigError(
            f"datasets.{name}.scenes.validation: {', '.join(unknown)} is not a training scene; the validation "
            f"scenes are held out of the training scenes ({', '.join(train) or 'none'}), never test scenes"
        )
    if held and len(set(held)) == len(train):
        raise ConfigError(f"datasets.{name}.scenes.validation holds out every training scene; keep at least one to train on")
    return tuple(dict.fromkeys(held))


def _check_regions_disjoint(name: str, entry: Mapping[str, Any], scenes: list[Scene]) -> None:
    """Train and test regions cut from one image must not overlap (it would leak the test set)."""

    def image_of(scene: Scene) -> tuple[str, str]:
        return entry.get("file", ".").format(scene=scene.key), (entry.get("variable") or "").format(scene=scene.key)

    for tr in (s for s in scenes if s.split == "train" and s.region):
        for te in (s for s in scenes if s.split == "test" and s.region):
            if image_of(tr) != image_of(te):
                continue
            a, b = tr.region, te.region
            if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                raise ConfigError(
                    f"datasets.{name}.scenes: training region {list(a)} of '{tr.name}' overlaps "
                    f"test region {list(b)} of '{te.name}'"
                )
