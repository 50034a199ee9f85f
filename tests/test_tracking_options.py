"""TrackerOptions: the tracker's options declared once; the config, the flags and the checks read it."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from scene_model.errors import ConfigError
from scene_model.tracking.options import (
    TrackerOptions,
    add_tracker_flags,
    flag_values,
    option_names,
    parse_assignments,
)
from tests.conftest import compose_config


def test_the_run_config_is_the_dataclass_with_its_defaults():
    cfg = compose_config([])
    assert OmegaConf.get_type(cfg.eval.tracker) is TrackerOptions
    assert OmegaConf.to_object(cfg.eval.tracker) == TrackerOptions()
    assert list(cfg.eval.tracker) == option_names()


def test_the_config_refuses_an_unknown_option_and_a_wrong_type():
    with pytest.raises(ConfigCompositionException, match=r"Could not override 'eval.tracker.max_lots'"):
        compose_config(["eval.tracker.max_lots=3"])
    with pytest.raises(ConfigCompositionException, match=r"Error merging override eval.tracker.max_lost=1.5") as caught:
        compose_config(["eval.tracker.max_lost=1.5"])
    assert "could not be converted to Integer" in str(caught.value.__cause__)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start_threshold": 1.5}, r"eval.tracker.start_threshold=1.5: out of range, expected 0.0..1.0"),
        ({"height_scale": -0.1}, r"eval.tracker.height_scale=-0.1: out of range, expected >= 0.0"),
        ({"nms_iou": -0.1}, r"eval.tracker.nms_iou=-0.1: out of range"),
        ({"smooth_sigma": float("nan")}, r"eval.tracker.smooth_sigma=nan: out of range"),
        ({"max_lost": 2.5}, r"eval.tracker.max_lost=2.5: expected an integer"),
        ({"interpolate": 1}, r"eval.tracker.interpolate=1: expected true or false"),
        ({"start_threshold": 0.3, "keep_threshold": 0.5}, r"keep_threshold=0.5 is above start_threshold=0.3"),
    ],
)
def test_values_out_of_range_name_the_config_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrackerOptions(**changes)


def test_unknown_keys_are_named_with_the_known_ones():
    with pytest.raises(ConfigError, match="unknown option\\(s\\) max_lots; the options are start_threshold"):
        TrackerOptions.from_mapping({"max_lots": 3})


def test_flags_cover_every_option_and_default_to_keeping_it():
    parser = argparse.ArgumentParser()
    add_tracker_flags(parser, "tracker")
    untouched = parser.parse_args([])
    assert flag_values(untouched) == dict.fromkeys(option_names())
    assert TrackerOptions().replace(**flag_values(untouched)) == TrackerOptions()
    given = parser.parse_args(["--max-lost", "7", "--no-interpolate", "--nms-iou", "0.5"])
    options = TrackerOptions().replace(**flag_values(given))
    assert (options.max_lost, options.interpolate, options.nms_iou) == (7, False, 0.5)


def test_assignments_are_cast_to_the_option_types():
    assert parse_assignments(["max_lost=10", "height_scale=0", "interpolate=false"]) == {
        "max_lost": 10, "height_scale": 0.0, "interpolate": False,
    }
    for bad, message in [("max_lots=3", "not an eval.tracker option"), ("max_lost=ten", "expected a number"),
                         ("interpolate=maybe", "true or false"), ("max_lost", "KEY=VALUE")]:
        with pytest.raises(ConfigError, match=message):
            parse_assignments([bad])


def test_every_option_has_a_range_or_is_a_switch_and_says_what_it_does():
    for spec in dataclasses.fields(TrackerOptions):
        assert spec.metadata["help"]
        assert spec.type in ("bool", bool) or spec.metadata["low"] is not None, spec.name
