"""The benchmark runner: discovery, interleaved timing, isolated peak memory, the loader benchmark."""

from __future__ import annotations

import pytest
import torch

from bench import Row, loader
from bench.__main__ import discover, format_rows, main
from bench._measure import interleaved_seconds, isolated_peak_memory_mib
from bench._syncs import SyncCounter
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


def test_sync_counter_counts_device_reads_and_not_host_ones():
    device_tensor, host_tensor = torch.ones(3), torch.ones(2)
    with SyncCounter() as counter:
        counter.mark_host([host_tensor])
        bool(host_tensor.sum() > 0)  # computed from host tensors only: no device involved
        host_tensor.tolist()
        total = device_tensor.sum()  # a device result
        total.item()
        device_tensor[device_tensor > 0]  # a boolean mask: its size must come to the host
        torch.cat([total[None], device_tensor]).cpu().numpy()  # one copy (numpy of a host copy is free)
        on_device = torch.zeros(2, device=device_tensor.device)
        on_device.tolist()
    assert counter.count == 4
    assert sum(counter.sites.values()) == 4 and all("test_bench.py" in site for site in counter.sites)


def test_a_training_step_syncs_once_outside_logging_steps(tiny_root, tmp_path):
    from bench.loss_path import step_syncs
    from tests.conftest import tiny_overrides

    overrides = [o for o in tiny_overrides(tiny_root) if not o.startswith(("trainer.log_every_n_steps", "trainer.limit_train"))]
    recorder, every = step_syncs([*overrides, "trainer.log_every_n_steps=4", "trainer.enable_progress_bar=true"], steps=6)
    sites = [site for step in recorder.sites for site in step]
    assert every == 4 and len(recorder.per_step) == 5
    assert sorted(recorder.per_step)[:3] == [1, 1, 1], (recorder.per_step, recorder.sites)  # the matcher's one copy
    assert all("matcher.py" in site for step, n in zip(recorder.sites, recorder.per_step, strict=True) if n == 1 for site in step)
    assert any("matcher.py" in site for site in sites)
