"""The arithmetic a run computes in: ``trainer.precision: auto`` is bf16 where the machine runs it natively.

bfloat16 halves the bytes a step moves and, on hardware with bf16 instructions (a CPU with
AVX512-BF16 or AMX, a GPU of the Ampere generation or later), doubles the rate of its matrix
products; elsewhere bf16 is emulated and slower than float32. ``auto`` therefore resolves once, at
the start of a run, to Lightning's ``bf16-mixed`` on such hardware and to ``32-true`` everywhere
else; any other value of ``trainer.precision`` is used as given. Weights and checkpoints stay float32
under ``bf16-mixed`` (autocast computes in bf16, the optimiser keeps float32 parameters), so a
checkpoint loads and runs on any machine. Tracking outside a trainer (the tools) computes in what
``machine_precision`` says for the device it runs on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
from omegaconf import DictConfig

log = logging.getLogger(__name__)

AUTO = "auto"
BF16, FP32 = "bf16-mixed", "32-true"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products in hardware (AVX512-BF16 or AMX tiles)."""
    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(probe is not None and bool(probe()) for probe in probes)


def has_native_bf16(device_type: str) -> bool:
    """Whether a device of ``device_type`` ("cpu", "cuda", ...) on this machine runs bf16 natively."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        return cpu_has_native_bf16()
    return False


def machine_precision(device_type: str) -> str:
    """``bf16-mixed`` where ``device_type`` runs bf16 natively on this machine, else ``32-true``."""
    return BF16 if has_native_bf16(device_type) else FP32


def trainer_device_type(accelerator: str | None) -> str:
    """The device type Lightning picks for ``trainer.accelerator``."""
    accelerator = str(accelerator or AUTO).lower()
    if accelerator in ("gpu", "cuda") or (accelerator == AUTO and torch.cuda.is_available()):
        return "cuda"
    if accelerator == AUTO and torch.backends.mps.is_available():
        return "mps"
    return accelerator if accelerator != AUTO else "cpu"


def resolve_precision(cfg: DictConfig) -> str:
    """Replace ``trainer.precision: auto`` in ``cfg`` by the machine's precision (one log line saying
    which and why); any other value stays. Returns the precision the run computes in."""
    trainer = cfg.get("trainer")
    if trainer is None or str(trainer.get("precision")) != AUTO:
        return str(trainer.get("precision")) if trainer is not None else FP32
    device = trainer_device_type(trainer.get("accelerator"))
    chosen = machine_precision(device)
    why = "runs bf16 natively" if chosen == BF16 else "has no native bf16"
    log.info(f"trainer.precision=auto: {chosen} (this {device.upper()} {why}; set trainer.precision to choose)")
    trainer.precision = chosen
    return chosen


@contextlib.contextmanager
def machine_autocast(device: torch.device) -> Iterator[None]:
    """Autocast to bf16 where ``device`` runs it natively on this machine; float32 otherwise."""
    if machine_precision(device.type) == BF16:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield
