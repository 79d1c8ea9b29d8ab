"""An accelerator emulated on the CPU, to catch tensors left on the wrong device without a GPU.

Inside ``with remote_device():`` the ``meta`` device stands in for a GPU: ``x.to("meta")``,
``model.to("meta")`` and factory functions given ``device="meta"`` make :class:`Remote` tensors, which
report ``device == meta`` but hold real CPU data, so every computation gives real numbers. An op that
mixes a Remote tensor with a plain CPU tensor of one element or more raises as it would on CUDA
(``Expected all tensors to be on the same device``), and ``Remote.numpy()`` raises as a CUDA tensor's
does; ``.cpu()`` / ``.to("cpu")`` give a plain CPU tensor back. As on CUDA, 0-dim CPU tensors mix with
device tensors, CPU indices may index a device tensor, and ``copy_`` crosses devices.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

META = torch.device("meta")
aten = torch.ops.aten

# ops that, on CUDA, accept CPU tensors beside device tensors
_CROSS_DEVICE = {aten.copy_.default, aten.index.Tensor, aten.index_put_.default, aten.index_put.default,
                 aten._index_put_impl_.default, aten._to_copy.default, aten.lift_fresh.default}


class Remote(torch.Tensor):
    """A CPU tensor that says it lives on the ``meta`` device (the emulated GPU)."""

    @staticmethod
    def __new__(cls, data: torch.Tensor):
        return torch.Tensor._make_wrapper_subclass(
            cls, data.shape, strides=data.stride(), storage_offset=data.storage_offset(), dtype=data.dtype,
            device=META, layout=data.layout, requires_grad=data.requires_grad)

    def __init__(self, data: torch.Tensor) -> None:
        self.data_ = data

    def __repr__(self) -> str:
        return f"Remote({self.data_!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert a device tensor (emulated GPU) to numpy. Use Tensor.cpu() to copy the "
                        "tensor to host memory first.")


def _unwrap(x):
    return x.data_ if isinstance(x, Remote) else x


def _wrap(x):
    return Remote(x) if isinstance(x, torch.Tensor) and not isinstance(x, Remote) else x


def _check_devices(func, flat) -> None:
    if func in _CROSS_DEVICE:
        return
    tensors = [t for t in flat if isinstance(t, torch.Tensor)]
    if any(isinstance(t, Remote) for t in tensors):
        plain = [t for t in tensors if not isinstance(t, Remote) and t.device.type == "cpu" and t.dim() > 0]
        if plain:
            raise RuntimeError(
                f"Expected all tensors to be on the same device, but found at least two devices, meta (the "
                f"emulated GPU) and cpu! ({func}: a cpu tensor of shape {tuple(plain[0].shape)})")


def _run(func, args, kwargs):
    flat, _ = tree_flatten((args, kwargs))
    _check_devices(func, flat)
    to_meta = kwargs.get("device") is not None and torch.device(kwargs["device"]).type == "meta"
    if func is aten._to_copy.default:
        src = args[0]
        target = kwargs.get("device")
        kw = {k: v for k, v in kwargs.items() if k != "device"}
        if target is None:
            out = func(_unwrap(src), **kw)
            return Remote(out) if isinstance(src, Remote) else out
        if torch.device(target).type == "meta":
            return Remote(func(_unwrap(src), **kw))
        return func(_unwrap(src), **kwargs)
    any_remote = any(isinstance(t, Remote) for t in flat)
    if to_meta:
        kwargs = {**kwargs, "device": torch.device("cpu")}
    out = func(*tree_map(_unwrap, args), **tree_map(_unwrap, kwargs))
    if not (any_remote or to_meta):
        return out
    if func._schema.is_mutable and args and isinstance(args[0], Remote):
        # an in-place op returns its first argument: hand back the same Remote object
        rets = func._schema.returns
        if len(rets) == 1 and rets[0].alias_info is not None and rets[0].alias_info.is_write:
            return args[0]
    return tree_map(_wrap, out)


class _Mode(TorchDispatchMode):
    """Routes ops on plain tensors that target the meta device (``.to("meta")``, ``device="meta"``)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        dev = kwargs.get("device")
        if any(isinstance(t, Remote) for t in flat) or (dev is not None and torch.device(dev).type == "meta"):
            return _run(func, args, kwargs)
        return func(*args, **kwargs)


def _from_data(factory):
    """``torch.tensor`` / ``torch.as_tensor`` build a tensor from Python data below the dispatcher: with
    ``device="meta"`` build it on the CPU, then move it (which the mode sees)."""

    def make(data, *args, device=None, **kwargs):
        if device is not None and torch.device(device).type == "meta":
            return factory(data, *args, **kwargs).to(META)
        return factory(data, *args, device=device, **kwargs)

    return make


@contextmanager
def remote_device():
    """Within the block, ``"meta"`` is an emulated GPU (see the module docstring)."""
    saved = torch.tensor, torch.as_tensor
    torch.tensor, torch.as_tensor = _from_data(torch.tensor), _from_data(torch.as_tensor)
    try:
        with _Mode():
            yield META
    finally:
        torch.tensor, torch.as_tensor = saved
