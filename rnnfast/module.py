"""The protocol every rnnfast layer and model follows, and the parameter arena.

A module owns named parameters (numpy arrays) and child modules. ``parameters()`` moves every parameter of the
tree and its gradient into one contiguous arena, so that an optimizer step, gradient clipping by global norm and
zeroing are each one pass over one buffer. Layers therefore always look their arrays up by name at call time.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping

import numpy as np

from . import _checks
from .quantize import WEIGHT_DTYPES, check_scale, quantize_rows


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
        # Weight matrices quantized for inference: local name -> (int8 rows, float32 scale per row).
        self._int8: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.weight_dtype = "float32"
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

    def _named_int8(self, prefix: str = "") -> Iterator[tuple[str, Module, str]]:
        for local in self._int8:
            yield prefix + local, self, local
        for child_name, child in self._children.items():
            yield from child._named_int8(f"{prefix}{child_name}.")

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
        """Parameters by name; a quantized weight matrix ``name`` appears as int8 ``name`` and ``name.scale``."""
        state = {name: module._params[local].copy() for name, module, local in self._named_slots()}
        for name, module, local in self._named_int8():
            q, scale = module._int8[local]
            state[name], state[name + ".scale"] = q.copy(), scale.copy()
        return state

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Copy values into this module's parameters; every problem is reported at once, nothing is half-loaded."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state: got {type(state).__name__}, expected a mapping of parameter names to arrays")
        slots = {name: (module, local) for name, module, local in self._named_slots()}
        int8_slots = {name: (module, local) for name, module, local in self._named_int8()}
        expected = [*slots, *int8_slots, *(name + ".scale" for name in int8_slots)]
        problems = []
        missing = [name for name in expected if name not in state]
        extra = [name for name in state if name not in expected]
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
        quantized = []
        for name, (module, local) in int8_slots.items():
            if name not in state or name + ".scale" not in state:
                continue
            q, scale = state[name], state[name + ".scale"]
            target = module._int8[local][0]
            if not isinstance(q, np.ndarray) or q.dtype != np.int8 or q.shape != target.shape:
                got = f"{q.dtype} {q.shape}" if isinstance(q, np.ndarray) else type(q).__name__
                problems.append(f"{name} is {got}, expected int8 {target.shape}")
                continue
            problem = check_scale(scale, name + ".scale", target.shape[0])
            if problem:
                problems.append(problem)
                continue
            quantized.append((module, local, q, scale))
        if problems:
            raise ValueError("load_state_dict: " + "; ".join(problems))
        for name, value in converted.items():
            module, local = slots[name]
            module._params[local][...] = value
        for module, local, q, scale in quantized:
            module._int8[local][0][...] = q
            module._int8[local][1][...] = scale

    # ----- quantization ------------------------------------------------------------------------------------
    def _matrices(self) -> dict[str, np.ndarray]:
        """The weight matrices (out, in) that ``quantize`` turns into int8: none, unless a layer says so."""
        return {}

    def quantize(self, weight_dtype: str = "int8") -> Module:
        """An inference-only copy (in evaluation mode) whose weight matrices are int8 with one scale per row;
        see rnnfast.quantize. It predicts, evaluates, generates, saves and loads; training it raises."""
        weight_dtype = _checks.choice(weight_dtype, "weight_dtype", WEIGHT_DTYPES)
        if self.weight_dtype != "float32":
            raise ValueError(f"weight_dtype: this model is quantized to {self.weight_dtype} already")
        if self.dtype != np.float32:
            raise ValueError(f"weight_dtype: got {weight_dtype!r} for a {self.dtype.name} model, expected float32")
        model = copy.deepcopy(self)
        model.eval()
        for module in model.modules():
            for local, W in module._matrices().items():
                module._int8[local] = quantize_rows(W)
                module._params.pop(local, None)
                module._grads.pop(local, None)
            module._arena = None
            module.weight_dtype = weight_dtype
        return model

    def _refuse_if_quantized(self, what: str) -> None:
        if self.weight_dtype != "float32":
            raise RuntimeError(
                f"{what}: this model's weights are {self.weight_dtype} (quantize), which serves inference only; "
                f"train the float32 model and quantize it again"
            )

    # ----- modes --------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        if mode:
            self._refuse_if_quantized("train")
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)
