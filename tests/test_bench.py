"""The benchmark runner: discovery, interleaved timing, isolated peak memory, the loader benchmark."""

from __future__ import annotations

import pytest

from bench import Row, loader
from bench.__main__ import discover, format_rows, main
from bench._measure import interleaved_seconds, isolated_peak_memory_mib
from tests.memory_helpers import allocate


def test_every_module_of_the_package_is_a_benchmark():
    modules = discover()
    assert "loader" in modules and all(not name.startswith("_") for name in modules)
    assert all(callable(getattr(module, "run", None)) for module in modules.values())


def test_passes_take_turns_and_each_runs_every_round():
    calls: list[str] = []
    totals = interleaved_seconds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert set(totals) == {"a", "b"} and all(t >= 0 for t in totals.values())


def test_peak_memory_is_measured_in_a_fresh_process():
    assert 60 <= isolated_peak_memory_mib(allocate, 64) < 100


@pytest.mark.slow
def test_loader_benchmark_reports_speed_up_and_memory():
    rows = {row.name: row for row in loader.run(quick=True)}
    assert rows[f"{loader.EVAL} / naive"].unit == "x" and rows[f"{loader.EVAL} / naive"].value > 0
    assert rows[loader.NAIVE].value > 0 and rows[loader.EVAL].value > 0
    assert {name for name in rows if name.startswith("peak memory")} == {f"peak memory, {loader.NAIVE}", f"peak memory, {loader.EVAL}"}
    assert rows["mean |ours - naive| per pixel"].value < 3


def test_unknown_benchmark_is_named(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["nosuch"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "nosuch" in error and "loader" in error


def test_rows_are_aligned():
    text = format_rows([Row("x", "a", 1.5, "s"), Row("x", "longer name", 1234.0, "frames/s", "note")])
    header, first, second = text.splitlines()
    assert header.index("value") + len("value") == first.index("1.5") + len("1.5") and second.endswith("note")
