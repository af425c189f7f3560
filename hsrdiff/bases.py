"""Network bases by name: which images a network adds its output to, and how their names read.

A base is ``kind[@weights][+p<N>]`` (``model.base``, ``base_weight``, ``base_consistency``):
:func:`base_name` writes it, :func:`parse_base_name` reads it, :func:`base_operators` says which
observation operators computing it needs. The images themselves come from
:func:`hsrdiff.baselines.fusion_base`. No torch here: the workflow imports this module to build
its DAG, once per Snakemake start and per cluster job.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from hsrdiff.methods import WITH_SETTINGS

BASES = ("bicubic", "glp-hs", "gsa", "cnmf", "hysure", "glp-hs+cnmf", "glp-hs+cnmf+gsa", "glp-hs+cnmf+gsa+hysure")
# A base that is a weighted mean of fusions, each projected (+p<N>) before they are averaged: their
# errors lie in the observations' null space and are far from equal, so a mix beats the best of
# them on most scenes (docs/performance.md, "The networks' base chosen on CAVE's training
# scenes"). The weights are chosen on training scenes with `hsrdiff probe-bases`: on CAVE, CNMF
# 0.4, GSA 0.16 and HySure 0.2 (GLP-HS 0.24); on the demo, where GSA adds nothing, CNMF 0.75 of
# two parts.
MEAN_BASES = {"glp-hs+cnmf": ("glp-hs", "cnmf"), "glp-hs+cnmf+gsa": ("glp-hs", "cnmf", "gsa"),
              "glp-hs+cnmf+gsa+hysure": ("glp-hs", "cnmf", "gsa", "hysure")}


class BaseSpec(NamedTuple):
    """A network base's name parsed: ``kind[@weights][+p<consistency>]``."""

    kind: str
    consistency: int = 0
    weights: tuple[float, ...] = ()  # of every part of a mean base (MEAN_BASES), summing to 1


def mean_weights(kind: str, weight: float | Sequence[float] | None = None) -> tuple[float, ...]:
    """Every part's weight in the mean base ``kind`` from ``model.base_weight``: the weights of the
    parts after the first (a number for two parts, a list otherwise; the first part takes the
    rest), or None for equal weights."""
    parts = MEAN_BASES[kind]
    if weight is None:
        return tuple(1 / len(parts) for _ in parts)
    later = (float(weight),) if isinstance(weight, (int, float)) else tuple(float(w) for w in weight)
    if len(later) != len(parts) - 1:
        raise ValueError(f"model base {kind}: base_weight gives the weights of {', '.join(parts[1:])} "
                         f"({len(parts) - 1} number(s)), got {len(later)}")
    if not all(0 <= w <= 1 for w in later) or sum(later) > 1 + 1e-9:
        raise ValueError(f"model base {kind}: base_weight {', '.join(f'{w:g}' for w in later)} must lie in "
                         f"[0, 1] and sum to at most 1 (the rest is {parts[0]}'s)")
    return (max(1 - sum(later), 0.0), *later)


def base_name(kind: str, consistency: int = 0, weight: float | Sequence[float] | None = None) -> str:
    """The name a network base goes by (patch files' ``base_<name>``, probe-bases' rows):
    ``model.base``, then ``@<w>[,<w>]`` for a mean base whose ``model.base_weight`` is not equal
    weights, then ``+p<N>`` when ``model.base_consistency`` projects it onto the observations.
    Other bases have no weight and ignore it (a config overlay that changes the base keeps the key)."""
    mix = ""
    if kind in MEAN_BASES:
        weights = mean_weights(kind, weight)
        if max(weights) - min(weights) > 1e-12:
            mix = "@" + ",".join(f"{w:g}" for w in weights[1:])
    return f"{kind}{mix}+p{int(consistency)}" if consistency else f"{kind}{mix}"


def parse_base_name(name: str) -> BaseSpec:
    head, _, projected = name.partition("+p")
    kind, at, weight = head.partition("@")
    try:
        if kind not in BASES or (projected and not projected.isdigit()) or (at and kind not in MEAN_BASES):
            raise ValueError
        weights = mean_weights(kind, [float(w) for w in weight.split(",")] if at else None) if kind in MEAN_BASES else ()
        spec = BaseSpec(kind, int(projected or 0), weights)
    except ValueError:
        raise ValueError(f"unknown model base '{name}'; expected one of {', '.join(BASES)}, optionally "
                         f"+p<iterations>, and {', '.join(MEAN_BASES)} optionally @<weights of the parts after "
                         f"the first, in [0, 1], comma-separated>") from None
    return spec


def base_operators(name: str) -> tuple[bool, bool]:
    """Whether the base ``name`` needs the observations' PSF, and their SRF: every fusion the
    PSF, CNMF and HySure (alone or in a mean) the SRF, and a projected base (``+p<N>``) both."""
    kind, consistency, _ = parse_base_name(name)
    parts = MEAN_BASES.get(kind, (kind,))
    return kind != "bicubic" or bool(consistency), bool(set(parts) & set(WITH_SETTINGS)) or bool(consistency)
