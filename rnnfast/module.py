"""The protocol every rnnfast layer and model follows, and the parameter arena.

A module owns named parameters (numpy arrays) and child modules. ``parameters()`` moves every parameter of the
tree and its gradient into one contiguous arena, so that an optimizer step, gradient clipping by global norm and
zeroing are each one pass over one buffer. Layers therefore always look their arrays up by name at call time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from . import _checks


class Parameters:
    """All parameters of a module tree as one flat array (``data``) with a matching flat ``grad``."""

    def __init__(self, data: np.ndarray, grad: np.ndarray, names: list[str], shapes: list[tuple], offsets: list[int]):
        self.data = data
        self.grad = grad
        self.names = names
        self.shapes = shapes
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.names)

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name, shape, offset in zip(self.names, self.shapes, self.offsets):
            size = int(np.prod(shape, dtype=np.int64))
            out[name] = flat[offset : offset + size].reshape(shape)
        return out


MODULE_TYPES: dict[str, type] = {}


class Module:
    """Base class: named parameters, gradients, children, train/eval mode.

    Subclasses that can be rebuilt from ``config()`` (a JSON-able dict of constructor arguments) are saved and
    loaded by name through ``MODULE_TYPES``; every subclass registers itself there.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            MODULE_TYPES[cls.__name__] = cls

    def config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} cannot be saved: it defines no config()")

    def __init__(self) -> None:
        self._params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] = {}
        self._children: dict[str, Module] = {}
        self._arena: Parameters | None = None
        self.training = True

    # ----- construction -------------------------------------------------------------------------------------
    def _add_param(self, name: str, value: np.ndarray) -> None:
        self._params[name] = np.ascontiguousarray(value)
        self._grads[name] = np.zeros_like(self._params[name])

    def _add_child(self, name: str, module: Module) -> Module:
        self._children[name] = module
        return module

    # ----- traversal ----------------------------------------------------------------------------------------
    def _named_slots(self, prefix: str = "") -> Iterator[tuple[str, Module, str]]:
        for local in self._params:
            yield prefix + local, self, local
        for child_name, child in self._children.items():
            yield from child._named_slots(f"{prefix}{child_name}.")

    def modules(self) -> Iterator[Module]:
        yield self
        for child in self._children.values():
            yield from child.modules()

    @property
    def dtype(self) -> np.dtype:
        for _, module, local in self._named_slots():
            return module._params[local].dtype
        return np.dtype(np.float32)

    # ----- parameters and gradients -------------------------------------------------------------------------
    def parameters(self) -> Parameters:
        """The tree's parameters and gradients as one arena (built on first use, rebuilt if the tree changed)."""
        slots = list(self._named_slots())
        arena = self._arena
        if (
            arena is not None
            and arena.names == [name for name, _, _ in slots]
            and all(module._params[local].base is arena.data for _, module, local in slots)
        ):
            return arena
        dtypes = {module._params[local].dtype for _, module, local in slots}
        if len(dtypes) > 1:
            raise TypeError(f"parameters: got mixed dtypes {sorted(str(d) for d in dtypes)}, expected one dtype")
        dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
        shapes = [module._params[local].shape for _, module, local in slots]
        sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
        offsets = list(np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)) if sizes else []
        total = int(sum(sizes))
        data = np.empty(total, dtype=dtype)
        grad = np.empty(total, dtype=dtype)
        arena = Parameters(data, grad, [name for name, _, _ in slots], shapes, offsets)
        data_views, grad_views = arena.views(data), arena.views(grad)
        for name, module, local in slots:
            data_views[name][...] = module._params[local]
            grad_views[name][...] = module._grads[local]
            module._params[local] = data_views[name]
            module._grads[local] = grad_views[name]
        for module in self.modules():
            module._arena = None
        self._arena = arena
        return arena

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Gradients by parameter name (views: they accumulate across backward calls until ``zero_grad``)."""
        return {name: module._grads[local] for name, module, local in self._named_slots()}

    def named_parameters(self) -> dict[str, np.ndarray]:
        return {name: module._params[local] for name, module, local in self._named_slots()}

    def zero_grad(self) -> None:
        for _, module, local in self._named_slots():
            module._grads[local].fill(0)

    def num_parameters(self) -> int:
        return sum(module._params[local].size for _, module, local in self._named_slots())

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: module._params[local].copy() for name, module, local in self._named_slots()}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Copy values into this module's parameters; every problem is reported at once, nothing is half-loaded."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state: got {type(state).__name__}, expected a mapping of parameter names to arrays")
        slots = {name: (module, local) for name, module, local in self._named_slots()}
        problems = []
        missing = [name for name in slots if name not in state]
        extra = [name for name in state if name not in slots]
        if missing:
            problems.append("missing " + ", ".join(missing))
        if extra:
            problems.append("unexpected " + ", ".join(str(k) for k in extra))
        converted = {}
        for name, (module, local) in slots.items():
            if name not in state:
                continue
            target = module._params[local]
            value = _checks.as_float_array(state[name], f"state[{name!r}]", target.dtype)
            if value.shape != target.shape:
                problems.append(f"{name} has shape {value.shape}, expected {target.shape}")
                continue
            if not np.isfinite(value).all():
                problems.append(f"{name} contains NaN or Inf")
                continue
            converted[name] = value
        if problems:
            raise ValueError("load_state_dict: " + "; ".join(problems))
        for name, value in converted.items():
            module, local = slots[name]
            module._params[local][...] = value

    # ----- modes --------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)
