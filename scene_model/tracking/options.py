"""The tracker's options, declared once: name, type, default, range and meaning.

``TrackerOptions`` is the one place they live. The run config's ``eval.tracker`` node is this
dataclass (registered with Hydra's ConfigStore as ``eval/tracker/default``, so Hydra checks its keys
and types), ``SequenceTracker`` takes it, the command-line tools build their flags from it
(``add_tracker_flags``), and the docs' table is checked against it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from scene_model.errors import ConfigError

CONFIG_KEY = "eval.tracker"


def _option(default: Any, low: float | None, high: float | None, help: str) -> Any:
    return field(default=default, metadata={"low": low, "high": high, "help": help})


@dataclass
class TrackerOptions:
    """How window predictions become tracks (``tracking.linker``, ``tracking.track_postprocess``).

    Every number is checked against its range when an instance is made; a value outside it is a
    ConfigError naming ``eval.tracker.<option>``.
    """

    start_threshold: float = _option(0.5, 0.0, 1.0, "existence probability that starts a track")
    keep_threshold: float = _option(
        0.1, 0.0, 1.0, "score that writes a box of a running track (at most start_threshold)"
    )
    link_iou: float = _option(
        0.1, 0.0, 1.0, "mean IoU on the shared frames a pair needs to carry a track into the next window "
        "(a gate; the Hungarian match decides between candidates)"
    )
    max_lost: int = _option(
        30, 0, None, "frames a track may go without a written box before it ends (ByteTrack's track buffer)"
    )
    height_scale: float = _option(
        0.1, 0.0, None, "links prefer the query of the track's height: the objective is multiplied by "
        "exp(-|log(query height / track height)| / height_scale) (0: IoU and score only)"
    )
    nms_iou: float = _option(
        0.6, 0.0, 1.0, "a query whose boxes overlap a higher-scoring query's by at least this mean IoU over "
        "the window is a duplicate, never written or linked (1: only exact copies)"
    )
    interpolate: bool = _option(
        True, None, None, "fill a track's frames without a box (up to max_lost in a row) by linear "
        "interpolation between its boxes on either side"
    )
    smooth_sigma: float = _option(
        1.0, 0.0, None, "smooth each track's boxes over time by a Gaussian of this many frames (0: off)"
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            kind = bool if spec.type in (bool, "bool") else int if spec.type in (int, "int") else float
            if kind is bool:
                if not isinstance(value, bool):
                    raise ConfigError(f"{CONFIG_KEY}.{spec.name}={value!r}: expected true or false")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and value != int(value)):
                raise ConfigError(f"{CONFIG_KEY}.{spec.name}={value!r}: expected {'an integer' if kind is int else 'a number'}")
            low, high = spec.metadata["low"], spec.metadata["high"]
            if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
                allowed = f"{low}..{high}" if high is not None else f">= {low}"
                raise ConfigError(f"{CONFIG_KEY}.{spec.name}={value!r}: out of range, expected {allowed}")
        if self.keep_threshold > self.start_threshold:
            raise ConfigError(
                f"{CONFIG_KEY}.keep_threshold={self.keep_threshold} is above start_threshold={self.start_threshold}; "
                "a running track must be kept by any score that could start one"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrackerOptions:
        """From a config node or dict; an unknown key is a ConfigError naming it and the known ones."""
        values = dict(values)
        unknown = sorted(set(values) - set(option_names()))
        if unknown:
            raise ConfigError(
                f"{CONFIG_KEY}: unknown option(s) {', '.join(unknown)}; the options are {', '.join(option_names())}"
            )
        return cls(**values)

    def replace(self, **changes: Any) -> TrackerOptions:
        """A copy with ``changes`` (None values ignored: "keep what it was")."""
        return self.from_mapping({**dataclasses.asdict(self), **{k: v for k, v in changes.items() if v is not None}})


def option_names() -> list[str]:
    return [spec.name for spec in dataclasses.fields(TrackerOptions)]


def option_type(name: str) -> type:
    """bool, int or float: the type of option ``name``."""
    spec = {s.name: s for s in dataclasses.fields(TrackerOptions)}[name]
    return {"bool": bool, "int": int, "float": float}.get(str(spec.type), spec.type)


def option_help(name: str) -> str:
    return {s.name: s.metadata["help"] for s in dataclasses.fields(TrackerOptions)}[name]


def add_tracker_flags(parser: argparse.ArgumentParser, title: str, exclude: tuple[str, ...] = ()) -> None:
    """One ``--option-name`` flag per tracker option (``--[no-]interpolate`` for the switches), each
    defaulting to None (keep the value the tool starts from)."""
    group = parser.add_argument_group(title)
    for name in option_names():
        if name in exclude:
            continue
        flag = "--" + name.replace("_", "-")
        kind = option_type(name)
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=option_help(name))
        else:
            group.add_argument(flag, type=kind, default=None, metavar=kind.__name__.upper(), help=option_help(name))


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The tracker options set by ``add_tracker_flags``'s flags (None where a flag was not given)."""
    return {name: getattr(args, name) for name in option_names() if hasattr(args, name)}


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> {option: value}, each cast to the option's type; an unknown key or a value
    of the wrong type is a ConfigError naming it."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{pair!r}: expected KEY=VALUE, e.g. max_lost=10")
        if key not in option_names():
            raise ConfigError(f"{key}: not an {CONFIG_KEY} option (one of {', '.join(option_names())})")
        kind = option_type(key)
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ConfigError(f"{key}={text!r}: expected true or false")
            options[key] = text.lower() == "true"
            continue
        try:
            options[key] = kind(text)
        except ValueError:
            raise ConfigError(f"{key}={text!r}: expected a number ({kind.__name__})") from None
    return options


ConfigStore.instance().store(group="eval/tracker", name="default", node=TrackerOptions)
