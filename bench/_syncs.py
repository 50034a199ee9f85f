"""Counting host-device synchronisations of a training step on any machine, a CPU included.

A :class:`SyncCounter` (a TorchFunctionMode) sees every tensor call and counts those that make the
host wait for a device result (``item``, ``tolist``, ``numpy``, ``cpu``, ``bool(t)``, ``nonzero``,
boolean-mask indexing, ...), with the line of our code (or Lightning's) that made it. On a CPU every
tensor is on the host, so the counter keeps track of which tensors would live on the host of a GPU
run: those it is told about (the fields a SceneBatch leaves on the host, the optimiser's step
counters), tensors made without a ``device`` argument from host tensors only, and what ``cpu()``
and ``numpy()`` return. Every other tensor counts as a device tensor. ``.to(...)`` is not counted:
on a CPU a copy to the training device cannot be told from one to the host (our code copies to the
host with ``cpu()``).
"""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

SYNCING = {
    Tensor.item, Tensor.tolist, Tensor.numpy, Tensor.cpu, Tensor.__bool__, Tensor.__int__, Tensor.__float__,
    Tensor.__index__, Tensor.__format__, Tensor.__repr__, Tensor.nonzero, torch.nonzero, Tensor.masked_select,
    torch.masked_select, Tensor.unique, torch.unique, torch.equal, Tensor.equal,
}
TO_HOST = {Tensor.cpu, Tensor.numpy}
_OURS = str(Path(__file__).resolve().parents[1])
_TORCH = str(Path(torch.__file__).resolve().parent) + "/"


class SyncCounter(TorchFunctionMode):
    """``with SyncCounter() as counter: ...``; ``counter.count`` and ``counter.sites`` (call site -> count)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.sites: Counter[str] = Counter()
        self._host: dict[int, Tensor] = {}  # id -> tensor (held, so that the id is not reused)

    def mark_host(self, tensors: Iterable[Any]) -> None:
        """Tensors that stay on the host in a GPU run."""
        for tensor in tree_leaves(list(tensors)):
            if isinstance(tensor, Tensor):
                self._host[id(tensor)] = tensor

    def is_host(self, tensor: Tensor) -> bool:
        return id(tensor) in self._host

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        kwargs = kwargs or {}
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, Tensor)]
        on_device = any(not self.is_host(t) for t in inputs)
        if on_device and _syncs(func, args, kwargs):
            self.count += 1
            self.sites[f"{_call_site()} {getattr(func, '__name__', func)}"] += 1
        result = func(*args, **kwargs)
        if func in TO_HOST or (not on_device and not _names_a_device(func, args, kwargs)):
            self.mark_host([result])
        elif _names_a_device(func, args, kwargs):
            for tensor in tree_leaves([result]):  # .to(device) of a host tensor may return the same object on a CPU
                if isinstance(tensor, Tensor):
                    self._host.pop(id(tensor), None)
        return result


def _syncs(func: Any, args: tuple, kwargs: dict) -> bool:
    if func in SYNCING:
        return True
    if func in (Tensor.__getitem__, Tensor.__setitem__):  # a boolean mask index: data-dependent shape
        return any(isinstance(i, Tensor) and i.dtype == torch.bool for i in tree_leaves([args[1]]))
    return False


def _names_a_device(func: Any, args: tuple, kwargs: dict) -> bool:
    """A new tensor put on a device chosen by the caller: ``device=...``, ``.to(device)``, ``.cuda()``."""
    if kwargs.get("device") is not None:
        return True
    if func is Tensor.cuda:
        return True
    return func is Tensor.to and len(args) > 1 and isinstance(args[1], str | torch.device)


def _call_site() -> str:
    """The innermost line outside torch (and outside this file) that made the call."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if frame.filename.startswith(_TORCH) or frame.filename == __file__:
            continue
        name = frame.filename[len(_OURS) + 1:] if frame.filename.startswith(_OURS) else frame.filename.split("site-packages/")[-1]
        return f"{name}:{frame.lineno}"
    return "?"
