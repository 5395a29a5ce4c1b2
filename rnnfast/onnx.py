"""ONNX export and import: rnnfast's layers and models as ONNX graphs that onnxruntime (or any ONNX runtime) runs,
and ONNX graphs of standard recurrent architectures (PyTorch's exports) as rnnfast layers and models.

``export(model, path)`` writes RNN, LSTM, GRU, LanguageModel, SequenceClassifier, SequenceTagger and Forecaster as
graphs of the standard ``LSTM``/``GRU``/``RNN`` operators and ordinary tensor operators, with dynamic batch and
time axes. ONNX orders gates differently from PyTorch and rnnfast (LSTM i, o, f, c instead of i, f, g, o; GRU z, r,
h instead of r, z, n, with ``linear_before_reset=1`` for the reset gate applied to ``W_hn h + b_hn``) and keeps
both directions of a layer in one tensor; the weights are rearranged accordingly. Lengths and initial states are
optional graph inputs: inputs with a default value (an empty ``lengths`` means every sequence fills the batch's
time axis, a zero state of batch 1 is broadcast over the batch), which onnxruntime lists as overridable
initializers. The model's class, config and rnnfast version, and any ``metadata`` given, are stored as the
model's metadata (``custom_metadata_map`` in onnxruntime), each value as JSON.

``load(path)`` returns the rnnfast layer or model a graph computes. A graph that rnnfast exported is rebuilt from
its metadata and then exported again in memory: it loads only if that gives the very same graph and weights. Any
other graph is read by following each tensor from the graph inputs through the nodes, knowing for each axis what
it holds (time, batch, directions, features), so that it maps to a model only when every node does what the
model does; anything else is refused naming the node, its operator and the reason. Nothing in a file is
executed: the graph is only read.

The ``onnx`` package is needed for both (``pip install "rnnfast[onnx]"``) and is imported only when they run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np

DEFAULT_OPSET = 17
MIN_OPSET = 13  # Squeeze, Unsqueeze and ReduceSum take their axes as inputs from 13 on
INSTALL_HINT = 'pip install "rnnfast[onnx]"'
# Keys of the model's metadata that rnnfast writes itself; metadata= keys may not start with this prefix.
META_PREFIX = "rnnfast_"
_EXPORTABLE = ("RNN", "LSTM", "GRU", "LanguageModel", "SequenceClassifier", "SequenceTagger", "Forecaster")
# ONNX gate blocks, as indices of rnnfast's (PyTorch's) blocks: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h.
_GATE_ORDER = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn_tanh": (0,), "rnn_relu": (0,)}
_ONNX_OP = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}
_PROTOBUF_LIMIT = 2**31 - 2**24  # protobuf refuses messages of 2 GiB; larger models keep weights in a data file


def _onnx():
    """The onnx package, imported on first use so that rnnfast works without it."""
    try:
        import onnx
        import onnx.numpy_helper  # noqa: F401 - a submodule that `import onnx` does not always load
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"rnnfast.onnx needs the onnx package ({exc}); install it with {INSTALL_HINT}", name="onnx"
        ) from None
    return onnx


# ===== export ===============================================================================================
class _Builder:
    """A graph under construction: nodes, initializers, inputs and outputs, with deterministic names (so that
    exporting the same model twice gives byte-identical files)."""

    def __init__(self, onnx, opset: int, dtype: np.dtype):
        self.onnx = onnx
        self.opset = opset
        self.dtype = np.dtype(dtype)
        self.elem = onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes = []
        self.initializers = {}  # name -> TensorProto, in creation order
        self.inputs = []
        self.outputs = []
        self._consts = {}
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def init(self, name: str, value: np.ndarray) -> str:
        if name in self.initializers:
            raise AssertionError(f"initializer {name} defined twice")
        self.initializers[name] = self.onnx.numpy_helper.from_array(np.asarray(value, order="C"), name)  # 0-d stays 0-d
        return name

    def const(self, values, dtype=np.int64) -> str:
        """A small constant initializer, shared by every node that needs the same value."""
        arr = np.asarray(values, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self.init(f"const_{len(self._consts)}", arr)
        return self._consts[key]

    def op(self, op_type: str, inputs, n_outputs: int = 1, hint: str | None = None, **attrs):
        """Add a node; returns its output name, or the list of names when n_outputs is not 1. An output listed
        as "" in ``outputs=`` is left out (an optional output nobody reads)."""
        outputs = attrs.pop("outputs", None)
        if outputs is None:
            outputs = [self.fresh(hint or op_type.lower()) for _ in range(n_outputs)]
        while inputs and inputs[-1] == "":
            inputs = inputs[:-1]
        self._count += 1
        self.nodes.append(
            self.onnx.helper.make_node(op_type, list(inputs), list(outputs), name=f"{op_type}_{self._count}", **attrs)
        )
        return outputs[0] if n_outputs == 1 else outputs

    # ----- operators whose signature changed between opsets ------------------------------------------------
    def squeeze(self, x: str, axes) -> str:
        return self.op("Squeeze", [x, self.const(axes)])

    def unsqueeze(self, x: str, axes) -> str:
        return self.op("Unsqueeze", [x, self.const(axes)])

    def reduce(self, op_type: str, x: str, axes, keepdims: int = 0) -> str:
        # ReduceSum takes its axes as an input from opset 13, the other reductions from opset 18.
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.const(axes)], keepdims=keepdims)
        return self.op(op_type, [x], axes=list(axes), keepdims=keepdims)

    def dim(self, shape: str, index: int) -> str:
        """Entry ``index`` of a shape as a 1-element int64 tensor."""
        return self.op("Gather", [shape, self.const([index])])

    # ----- graph inputs and outputs ------------------------------------------------------------------------
    def add_input(self, name: str, elem: int, shape, default: np.ndarray | None = None) -> str:
        """A graph input; with ``default``, an optional one (an initializer of the same name is its value when
        the caller does not feed it)."""
        self.inputs.append(self.onnx.helper.make_tensor_value_info(name, elem, list(shape)))
        if default is not None:
            self.init(name, default)
        return name

    def add_output(self, value: str, name: str, elem: int, shape) -> None:
        """Make ``value`` the graph output ``name``: the node that computes it is renamed, or, for a graph input
        or an initializer, an Identity node passes it on."""
        producers = [node for node in self.nodes if value in node.output]
        if producers and value != name:
            for node in self.nodes:
                for k, item in enumerate(node.input):
                    if item == value:
                        node.input[k] = name
                for k, item in enumerate(node.output):
                    if item == value:
                        node.output[k] = name
        elif not producers:
            self.op("Identity", [value], outputs=[name])
        self.outputs.append(self.onnx.helper.make_tensor_value_info(name, elem, list(shape)))

    def model(self, doc: str, metadata: dict):
        helper = self.onnx.helper
        graph = helper.make_graph(
            self.nodes, "rnnfast", self.inputs, self.outputs, list(self.initializers.values()), doc_string=doc
        )
        opset_ids = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(
            graph, opset_imports=opset_ids, producer_name="rnnfast", producer_version=metadata[META_PREFIX + "version"]
        )
        # The oldest IR version that knows this opset: the widest range of runtimes can read the file.
        model.ir_version = helper.find_min_ir_version_for(opset_ids)
        helper.set_model_props(model, metadata)
        return model


def _onnx_layer_weights(rnn, layer: int):
    """ONNX's W (D, G*H, I), R (D, G*H, H) and B (D, 2*G*H) (None without biases) of one layer of ``rnn``."""
    H = rnn.hidden_size
    rows = np.concatenate([np.arange(b * H, (b + 1) * H) for b in _GATE_ORDER[rnn._cell]])
    params = rnn.named_parameters()
    W, R, B = [], [], []
    for suffix in rnn._suffixes():
        w_ih, w_hh, b_ih, b_hh = rnn._weights(params, layer, suffix)
        W.append(w_ih[rows])
        R.append(w_hh[rows])
        if b_ih is not None:
            B.append(np.concatenate([b_ih[rows], b_hh[rows]]))
    return np.stack(W), np.stack(R), (np.stack(B) if B else None)


def _set_layer_weights(rnn, layer: int, W, R, B) -> None:
    """The inverse of ``_onnx_layer_weights``: ONNX arrays into ``rnn``'s parameters (missing B: zero biases)."""
    H = rnn.hidden_size
    rows = np.concatenate([np.arange(b * H, (b + 1) * H) for b in _GATE_ORDER[rnn._cell]])
    back = np.argsort(rows)
    params = rnn.named_parameters()
    for d, suffix in enumerate(rnn._suffixes()):
        key = f"l{layer}{suffix}"
        params[f"weight_ih_{key}"][...] = W[d][back]
        params[f"weight_hh_{key}"][...] = R[d][back]
        if rnn.bias:
            bias = np.zeros(2 * rows.size, rnn.dtype) if B is None else B[d]
            params[f"bias_ih_{key}"][...] = bias[: rows.size][back]
            params[f"bias_hh_{key}"][...] = bias[rows.size :][back]


def _emit_stack(
    b: _Builder, rnn, prefix: str, x: str, seq_lens: str = "", h0: str = "", c0: str = "", need_y: bool = True
):
    """The recurrent stack ``rnn`` on time-major ``x`` (T, B, I): one ONNX node per layer. Returns (y (T, B, D*H)
    or None when not ``need_y``, the final h (L*D, B, H), the final c or None, the last layer's final h (D, B, H))."""
    D, H, L = rnn.num_directions, rnn.hidden_size, rnn.num_layers
    lstm = rnn._cell == "lstm"
    attrs = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward"}
    if rnn._cell == "gru":
        attrs["linear_before_reset"] = 1  # PyTorch's and rnnfast's reset gate multiplies W_hn h + b_hn
    if rnn._cell == "rnn_relu":
        attrs["activations"] = ["Relu"] * D
    hs, cs = [], []
    for layer in range(L):
        W, R, B = _onnx_layer_weights(rnn, layer)
        names = [
            b.init(f"{prefix}W_l{layer}", W),
            b.init(f"{prefix}R_l{layer}", R),
            b.init(f"{prefix}B_l{layer}", B) if B is not None else "",
        ]

        def rows(state, layer=layer):
            if not state or L == 1:
                return state
            return b.op("Slice", [state, b.const([layer * D]), b.const([(layer + 1) * D]), b.const([0])])

        inputs = [x, *names, seq_lens, rows(h0)] + ([rows(c0)] if lstm else [])
        last = layer == L - 1
        outputs = [b.fresh(f"{prefix}Y_l{layer}") if need_y or not last else "", b.fresh(f"{prefix}Y_h_l{layer}")]
        if lstm:
            outputs.append(b.fresh(f"{prefix}Y_c_l{layer}"))
        b.op(_ONNX_OP[rnn._cell], inputs, outputs=outputs, **attrs)
        hs.append(outputs[1])
        cs.append(outputs[2] if lstm else None)
        if outputs[0]:
            # Y is (T, D, B, H); the next layer and the caller read (T, B, D*H), forward direction first.
            if D == 1:
                x = b.squeeze(outputs[0], [1])
            else:
                x = b.op("Reshape", [b.op("Transpose", [outputs[0]], perm=[0, 2, 1, 3]), b.const([0, 0, -1])])
    h_n = hs[0] if L == 1 else b.op("Concat", hs, axis=0)
    c_n = None if not lstm else cs[0] if L == 1 else b.op("Concat", cs, axis=0)
    return (x if need_y else None), h_n, c_n, hs[-1]


class _Axes:
    """Names (dynamic) or sizes (fixed) of the batch and time axes of a graph's inputs and outputs."""

    def __init__(self, dynamic_axes):
        if dynamic_axes is True:
            self.batch, self.time = "batch", "time"
        elif isinstance(dynamic_axes, Mapping):
            unknown = sorted(set(dynamic_axes) - {"batch", "time"})
            if unknown:
                raise ValueError(
                    f"dynamic_axes: got keys {unknown}, expected 'batch' and/or 'time' mapped to a fixed size"
                )
            from ._checks import positive_int

            self.batch = (
                positive_int(dynamic_axes["batch"], "dynamic_axes['batch']") if "batch" in dynamic_axes else "batch"
            )
            self.time = positive_int(dynamic_axes["time"], "dynamic_axes['time']") if "time" in dynamic_axes else "time"
        else:
            raise ValueError(
                f"dynamic_axes: got {dynamic_axes!r}, expected True (batch and time sizes vary) or a "
                "dict fixing some of them, e.g. {'batch': 1, 'time': 1}"
            )

    def as_json(self):
        fixed = {k: v for k, v in (("batch", self.batch), ("time", self.time)) if isinstance(v, int)}
        return fixed or True


def _lengths(b: _Builder, shape: str, batch_axis: int = 1, time_axis: int = 0):
    """The optional ``lengths`` graph input (B,) int64: fed, or by default (an empty tensor) the time size for
    every sequence. Returns (lengths int64 (B,), lengths int32 for sequence_lens, B as a 1-element tensor)."""
    b.add_input("lengths", b.onnx.TensorProto.INT64, [b.axes.batch], default=np.zeros(0, np.int64))
    batch = b.dim(shape, batch_axis)
    full = b.op("Expand", [b.dim(shape, time_axis), batch])
    # Fed lengths come first in the concatenation, so the first B entries are they; else the time size.
    lengths = b.op("Slice", [b.op("Concat", ["lengths", full], axis=0), b.const([0]), batch, b.const([0])])
    return lengths, b.op("Cast", [lengths], to=b.onnx.TensorProto.INT32), batch


def _state_inputs(b: _Builder, rnn, shape: str, batch_axis: int = 1):
    """Optional initial states h0 (and c0) (L*D, B, H): fed, or zeros by default (broadcast over the batch)."""
    LD, H = rnn.num_layers * rnn.num_directions, rnn.hidden_size
    target = b.op("Concat", [b.const([LD]), b.dim(shape, batch_axis), b.const([H])], axis=0)
    names = ["h0", "c0"] if rnn._cell == "lstm" else ["h0"]
    return [
        b.op("Expand", [b.add_input(n, b.elem, [LD, b.axes.batch, H], default=np.zeros((LD, 1, H), b.dtype)), target])
        for n in names
    ]


def _state_outputs(b: _Builder, rnn, h_n: str, c_n: str | None) -> None:
    shape = [rnn.num_layers * rnn.num_directions, b.axes.batch, rnn.hidden_size]
    b.add_output(h_n, "h_n", b.elem, shape)
    if c_n is not None:
        b.add_output(c_n, "c_n", b.elem, shape)


def _linear(b: _Builder, x: str, module, prefix: str, weight_name: str | None = None) -> str:
    """``module`` (rnnfast Linear) over the last axis of x (..., in): MatMul by the transposed weight, Add bias.
    ``weight_name`` reuses an initializer (a weight tied to an embedding)."""
    weight, _ = module._weight_and_grad()
    w = weight_name or b.init(f"{prefix}weight", weight)
    y = b.op("MatMul", [x, b.op("Transpose", [w], perm=[1, 0])])
    if module.has_bias:
        y = b.op("Add", [y, b.init(f"{prefix}bias", module._params["bias"])])
    return y


def _gemm(b: _Builder, x: str, module, prefix: str) -> str:
    """``module`` (rnnfast Linear) over the rows of a matrix x (N, in)."""
    inputs = [x, b.init(f"{prefix}weight", module._weight_and_grad()[0])]
    if module.has_bias:
        inputs.append(b.init(f"{prefix}bias", module._params["bias"]))
    return b.op("Gemm", inputs, transB=1)


def _export_recurrent(b: _Builder, rnn) -> str:
    F, D, H = rnn.input_size, rnn.num_directions, rnn.hidden_size
    x_shape = [b.axes.batch, b.axes.time, F] if rnn.batch_first else [b.axes.time, b.axes.batch, F]
    x = b.add_input("x", b.elem, x_shape)
    if rnn.batch_first:
        x = b.op("Transpose", [x], perm=[1, 0, 2])
    shape = b.op("Shape", [x])
    _, seq_lens, _ = _lengths(b, shape)
    states = _state_inputs(b, rnn, shape)
    y, h_n, c_n, _ = _emit_stack(b, rnn, "", x, seq_lens, *states)
    if rnn.batch_first:
        y = b.op("Transpose", [y], perm=[1, 0, 2])
    b.add_output(y, "y", b.elem, x_shape[:2] + [D * H])
    _state_outputs(b, rnn, h_n, c_n)
    layout = "(B, T, input_size)" if rnn.batch_first else "(T, B, input_size)"
    return (
        f"x {layout}; optional lengths (B,) int64 and initial states h0"
        + (", c0" if c_n else "")
        + f" (num_layers*directions, B, H) -> y {layout[:-11]}directions*H), final states h_n"
        + (", c_n" if c_n else "")
        + "."
    )


def _export_language_model(b: _Builder, model) -> str:
    ids = b.add_input("input_ids", b.onnx.TensorProto.INT64, [b.axes.time, b.axes.batch])
    emb = b.init("embedding.weight", model.embedding._params["weight"])
    x = b.op("Gather", [emb, ids])
    states = _state_inputs(b, model.rnn, b.op("Shape", [ids]))
    y, h_n, c_n, _ = _emit_stack(b, model.rnn, "rnn.", x, "", *states)
    logits = _linear(b, y, model.head, "head.", weight_name=emb if model.tie_weights else None)
    b.add_output(logits, "logits", b.elem, [b.axes.time, b.axes.batch, model.vocab_size])
    _state_outputs(b, model.rnn, h_n, c_n)
    return (
        "input_ids (T, B) int64; optional initial states h0"
        + (", c0" if c_n else "")
        + " (num_layers, B, H) -> logits (T, B, vocab_size), final states h_n"
        + (", c_n" if c_n else "")
        + ": feed the final states back with the next tokens to generate token by token."
    )


def _front(b: _Builder, model):
    """The inputs (ids through the embedding, or features) of a sequence model: (x (T, B, width), the inputs'
    shape)."""
    TB = [b.axes.time, b.axes.batch]
    if model.embedding is not None:
        inputs = b.add_input("inputs", b.onnx.TensorProto.INT64, TB)
        x = b.op("Gather", [b.init("embedding.weight", model.embedding._params["weight"]), inputs])
    else:
        inputs = x = b.add_input("inputs", b.elem, TB + [model.input_size])
    return x, b.op("Shape", [inputs])


def _pool(b: _Builder, model, y: str, last_h: str, lengths: str, shape: str) -> str:
    """rnnfast's pooling (seqmodels._Pooling) of y (T, B, D*H) over each sequence's own steps -> (B, D*H)."""
    if model.pooling == "last":
        # The last layer's final states are the forward output at each sequence's last step and the backward
        # output at step 0: exactly what "last" pools.
        if model.num_directions == 1:
            return b.squeeze(last_h, [0])
        return b.op("Reshape", [b.op("Transpose", [last_h], perm=[1, 0, 2]), b.const([0, -1])])
    steps = b.op("Range", [b.const(0), b.op("Gather", [shape, b.const(0)]), b.const(1)])
    valid = b.op("Less", [b.unsqueeze(steps, [1]), b.unsqueeze(lengths, [0])])  # (T, B)
    valid = b.unsqueeze(valid, [2])
    if model.pooling == "mean":
        total = b.reduce("ReduceSum", b.op("Mul", [y, b.op("Cast", [valid], to=b.elem)]), [0])
        return b.op("Div", [total, b.op("Cast", [b.unsqueeze(lengths, [1])], to=b.elem)])
    masked = b.op("Where", [valid, y, b.const(-np.inf, b.dtype)])
    return b.reduce("ReduceMax", masked, [0])


def _export_classifier(b: _Builder, model) -> str:
    x, shape = _front(b, model)
    lengths, seq_lens, _ = _lengths(b, shape)
    need_y = model.pooling != "last"
    y, _, _, last_h = _emit_stack(b, model.rnn, "rnn.", x, seq_lens, need_y=need_y)
    logits = _gemm(b, _pool(b, model, y, last_h, lengths, shape), model.head, "head.")
    b.add_output(b.op("Softmax", [logits], axis=-1), "probabilities", b.elem, [b.axes.batch, model.num_classes])
    b.add_output(logits, "logits", b.elem, [b.axes.batch, model.num_classes])
    inputs = (
        "inputs (T, B) int64 token ids"
        if model.embedding is not None
        else f"inputs (T, B, {model.input_size}) features"
    )
    return (
        f"{inputs}; optional lengths (B,) int64 -> probabilities (B, num_classes) (softmax of the logits), "
        f"logits (B, num_classes); pooling {model.pooling!r}."
    )


def _export_tagger(b: _Builder, model) -> str:
    x, shape = _front(b, model)
    _, seq_lens, _ = _lengths(b, shape)
    parts = [x]
    for k, emb in enumerate(model.feature_embeddings):
        if k == 0:
            features = b.add_input(
                "features", b.onnx.TensorProto.INT64, [b.axes.time, b.axes.batch, len(model.feature_embeddings)]
            )
        column = b.op("Gather", [features, b.const(k)], axis=2)
        parts.append(b.op("Gather", [b.init(f"feature_embedding{k}.weight", emb._params["weight"]), column]))
    if model.char_features:
        chars = b.add_input("chars", b.onnx.TensorProto.INT64, [b.axes.time, b.axes.batch, "word_length"])
        chars_shape = b.op("Shape", [chars])
        words = b.op("Reshape", [chars, b.op("Concat", [b.const([-1]), b.dim(chars_shape, 2)], axis=0)])  # (N, W)
        present = b.op("Cast", [b.op("Not", [b.op("Equal", [words, b.const(0)])])], to=b.elem)
        # A word's characters come first, 0 pads after them; padded positions of the batch (no characters)
        # run one step, and what they give is never read.
        char_lengths = b.op("Max", [b.reduce("ReduceSum", present, [1]), b.const(1, b.dtype)])
        char_x = b.op(
            "Gather",
            [
                b.init("char_embedding.weight", model.char_embedding._params["weight"]),
                b.op("Transpose", [words], perm=[1, 0]),
            ],
        )  # (W, N, E)
        _, _, _, last_h = _emit_stack(
            b,
            model.char_rnn,
            "char_rnn.",
            char_x,
            b.op("Cast", [char_lengths], to=b.onnx.TensorProto.INT32),
            need_y=False,
        )
        vectors = b.op("Reshape", [b.op("Transpose", [last_h], perm=[1, 0, 2]), b.const([0, -1])])  # (N, 2Hc)
        target = b.op(
            "Concat",
            [b.op("Slice", [chars_shape, b.const([0]), b.const([2])]), b.const([2 * model.char_hidden_size])],
            axis=0,
        )
        parts.append(b.op("Reshape", [vectors, target]))
    if len(parts) > 1:
        x = b.op("Concat", parts, axis=2)
    y, _, _, _ = _emit_stack(b, model.rnn, "rnn.", x, seq_lens)
    scores = _linear(b, y, model.head, "head.")
    b.add_output(scores, "scores", b.elem, [b.axes.time, b.axes.batch, model.num_tags])
    doc = (
        "inputs (T, B) int64 token ids"
        if model.embedding is not None
        else f"inputs (T, B, {model.input_size}) features"
    ) + "; optional lengths (B,) int64"
    if model.feature_embeddings:
        doc += f"; features (T, B, {len(model.feature_embeddings)}) int64"
    if model.char_features:
        doc += "; chars (T, B, W) int64 character ids, 0 padding after each word's characters"
    doc += " -> scores (T, B, num_tags)"
    if model.crf:
        C = model.num_tags
        for name in ("transitions", "start_transitions", "end_transitions"):
            value = b.init(f"crf_layer.{name}", model.crf_layer._params[name])
            b.add_output(value, name, b.elem, [C, C] if name == "transitions" else [C])
        doc += (
            ", and the CRF's transitions (num_tags, num_tags), start_transitions and end_transitions "
            "(num_tags,): the best tags are the Viterbi path (rnnfast.onnx.viterbi_decode)"
        )
    else:
        doc += ": each token's tag is the argmax of its scores"
    return doc + "."


def _export_forecaster(b: _Builder, model) -> str:
    F = model.input_size
    double = b.onnx.TensorProto.DOUBLE
    history = b.add_input("history", double, [b.axes.time, b.axes.batch, F])
    shape = b.op("Shape", [history])
    lengths, seq_lens, batch = _lengths(b, shape)
    # Each sequence's last value (1, B, F), then the two features per series, in float64 as rnnfast computes them.
    index = b.op(
        "Expand",
        [
            b.unsqueeze(b.op("Sub", [lengths, b.const(1)]), [0, 2]),
            b.op("Concat", [b.const([1]), batch, b.const([F])], axis=0),
        ],
    )
    last = b.op("GatherElements", [history, index], axis=0)
    mean, std = b.init("mean", model.mean), b.init("std", model.std)
    scaled = b.op("Div", [b.op("Sub", [history, mean]), std])
    change = b.op("Div", [b.op("Sub", [history, last]), std])
    x = b.op("Cast", [b.op("Concat", [scaled, change], axis=2)], to=b.elem)
    _, _, _, last_h = _emit_stack(b, model.rnn, "rnn.", x, seq_lens, need_y=False)
    out = _gemm(b, b.squeeze(last_h, [0]), model.head, "head.")  # (B, horizon*F) scaled changes
    changes = b.op(
        "Transpose", [b.op("Reshape", [b.op("Cast", [out], to=double), b.const([0, model.horizon, F])])], perm=[1, 0, 2]
    )
    forecast = b.op("Add", [last, b.op("Mul", [changes, std])])
    b.add_output(forecast, "forecast", double, [model.horizon, b.axes.batch, F])
    return (
        f"history (T, B, {F}) float64; optional lengths (B,) int64 -> forecast ({model.horizon}, B, {F}) "
        "float64, the next horizon values in the series' units."
    )


def _metadata(model, metadata, axes: _Axes) -> dict:
    from . import __version__
    from .io import _dumps, _plain_json

    props = {
        META_PREFIX + "version": __version__,
        META_PREFIX + "class": type(model).__name__,
        META_PREFIX + "config": _dumps(_plain_json(model.config(), "model.config()")),
        META_PREFIX + "export": _dumps({"dynamic_axes": axes.as_json()}),
    }
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadata: got {type(metadata).__name__}, expected a dict of JSON data")
        for key, value in metadata.items():
            if not isinstance(key, str) or not key or key.startswith(META_PREFIX):
                raise ValueError(
                    f"metadata: got key {key!r}, expected non-empty str keys that do not start with "
                    f"{META_PREFIX!r} (rnnfast's own)"
                )
            props[key] = _dumps(_plain_json(value, f"metadata[{key!r}]"))
    return props


def _build(model, opset, dynamic_axes, metadata):
    """The ModelProto of ``model``, without writing it."""
    onnx = _onnx()
    from ._checks import integer

    name = type(model).__name__
    from . import module as _module

    if name not in _EXPORTABLE or _module.MODULE_TYPES.get(name) is not type(model):
        raise TypeError(f"model: got {name}, expected one of {', '.join(_EXPORTABLE)}")
    newest = onnx.defs.onnx_opset_version()
    opset = DEFAULT_OPSET if opset is None else integer(opset, "opset", MIN_OPSET, newest)
    dtype = np.dtype(model.dtype)
    if dtype != np.float32:
        raise ValueError(
            f"model: got a {dtype.name} model, expected float32: ONNX runtimes run LSTM, GRU and RNN "
            "in float32 (rebuild the model with dtype='float32' and copy the weights with "
            "load_state_dict(old.state_dict()))"
        )
    axes = _Axes(dynamic_axes)
    props = _metadata(model, metadata, axes)
    b = _Builder(onnx, opset, dtype)
    b.axes = axes
    export_one = {
        "LanguageModel": _export_language_model,
        "SequenceClassifier": _export_classifier,
        "SequenceTagger": _export_tagger,
        "Forecaster": _export_forecaster,
    }.get(name, _export_recurrent)
    doc = export_one(b, model)
    return b.model(f"rnnfast {name}: {doc}", props)


def export(model, path, *, opset=None, dynamic_axes=True, metadata=None, external_data=None) -> None:
    """Write ``model`` (RNN, LSTM, GRU, LanguageModel, SequenceClassifier, SequenceTagger, Forecaster; float32) to
    the ONNX file ``path``.

    ``opset``: the ONNX opset (default 17, at least 13). ``dynamic_axes``: True (the default) lets batch and time
    sizes vary; a dict such as ``{"batch": 1}`` fixes those axes. ``metadata``: JSON data stored with the model
    (one metadata entry per key, its value as JSON), e.g. the task settings. ``external_data``: keep the weights
    in ``path + ".data"`` next to the model (default: only when they pass protobuf's 2 GiB limit).

    The graph's inputs and outputs are described in its doc string; inputs with a default value (``lengths``,
    initial states) may be left out when running it.
    """
    if getattr(model, "weight_dtype", "float32") != "float32":
        raise ValueError(
            f"model: its weights are {model.weight_dtype} (quantize), which ONNX export does not write; "
            f"export the float32 model"
        )
    onnx = _onnx()
    from .io import _check_path

    path = _check_path(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"path: the directory of {path} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"path: {path} is a directory, expected a file name")
    proto = _build(model, opset, dynamic_axes, metadata)
    size = sum(len(t.raw_data) for t in proto.graph.initializer)
    if external_data is None:
        external_data = size > _PROTOBUF_LIMIT
    if not external_data:
        onnx.checker.check_model(proto)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        if external_data:
            onnx.save_model(
                proto,
                temporary,
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=os.path.basename(path) + ".data",
                size_threshold=0,
            )
        else:
            onnx.save_model(proto, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


# ===== the command line =====================================================================================
def add_export_command(subparsers) -> None:
    """``rnnfast export CHECKPOINT --format onnx --out MODEL.onnx [--opset N]``."""
    from .tasks.common import positive_int

    e = subparsers.add_parser(
        "export",
        help="write a checkpoint's model as an ONNX graph",
        description="Writes the model of CHECKPOINT as an ONNX file that onnxruntime runs, "
        "with the task settings and tokenizer of the checkpoint in its metadata, and prints one "
        "JSON object: path, model, opset, inputs, outputs. Needs the onnx package (" + INSTALL_HINT + ").",
    )
    e.add_argument("checkpoint", help="an rnnfast checkpoint (.rnnfast)")
    e.add_argument("--format", choices=("onnx",), default="onnx", help="the file format (onnx)")
    e.add_argument("--out", required=True, help="the file to write, e.g. model.onnx")
    e.add_argument("--opset", type=positive_int, help=f"ONNX opset, {MIN_OPSET} or newer (default {DEFAULT_OPSET})")


def export_command(args) -> int:
    from .io import load as load_checkpoint

    try:
        onnx = _onnx()
    except ModuleNotFoundError as exc:
        raise ValueError(f"--format onnx: {exc}") from None
    if args.opset is not None and not MIN_OPSET <= args.opset <= onnx.defs.onnx_opset_version():
        raise ValueError(
            f"--opset: got {args.opset}, expected {MIN_OPSET} to {onnx.defs.onnx_opset_version()} (the "
            "newest this onnx package knows)"
        )
    checkpoint = load_checkpoint(args.checkpoint)
    metadata = {}
    if isinstance(checkpoint.extra.get("task"), Mapping):
        metadata["task"] = checkpoint.extra["task"]
    if checkpoint.tokenizer is not None:
        metadata["tokenizer"] = checkpoint.tokenizer.to_dict()
    try:
        export(checkpoint.model, args.out, opset=args.opset, metadata=metadata)
    except TypeError as exc:
        raise ValueError(f"checkpoint: {exc}") from None
    graph = onnx.load(args.out, load_external_data=False).graph
    print(
        json.dumps(
            {
                "path": args.out,
                "model": type(checkpoint.model).__name__,
                "opset": DEFAULT_OPSET if args.opset is None else args.opset,
                "inputs": [v.name for v in graph.input],
                "outputs": [v.name for v in graph.output],
            }
        )
    )
    return 0


# ===== Viterbi decoding for a tagger's CRF outputs ==========================================================
def viterbi_decode(scores, transitions, start_transitions, end_transitions, lengths=None) -> np.ndarray:
    """The best tag sequences (T, B) int64 (-1 at padded positions) of a CRF tagger's ONNX outputs: ``scores``
    (T, B, C), ``transitions`` (C, C) (from tag i to tag j at [i, j]), ``start_transitions`` and
    ``end_transitions`` (C,), and ``lengths`` (B,) (default: all T). NumPy only: a serving process needs no
    rnnfast core for it."""
    scores = np.asarray(scores, np.float64)
    trans, start, end = (np.asarray(a, np.float64) for a in (transitions, start_transitions, end_transitions))
    C = scores.shape[-1] if scores.ndim == 3 else -1
    if scores.ndim != 3 or trans.shape != (C, C) or start.shape != (C,) or end.shape != (C,):
        raise ValueError(
            f"scores, transitions, start_transitions, end_transitions: got shapes {scores.shape}, "
            f"{trans.shape}, {start.shape}, {end.shape}; expected (T, B, C), (C, C), (C,), (C,)"
        )
    T, B, C = scores.shape
    lengths = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64).reshape(B)
    if (lengths < 1).any() or (lengths > T).any():
        raise ValueError(f"lengths: got {lengths.tolist()}, expected values in 1..{T}")
    tags = np.full((T, B), -1, np.int64)
    for k in range(B):
        n = int(lengths[k])
        best = start + scores[0, k]
        back = np.zeros((n, C), np.int64)
        for t in range(1, n):
            candidates = best[:, None] + trans  # (from, to)
            back[t] = candidates.argmax(axis=0)
            best = candidates.max(axis=0) + scores[t, k]
        tag = int((best + end).argmax())
        for t in range(n - 1, -1, -1):
            tags[t, k] = tag
            tag = int(back[t, tag])
    return tags


# ===== load =================================================================================================
class _Refused(Exception):
    """A node or graph that does not map to an rnnfast model (turned into a ValueError naming the file)."""


def load(path):
    """The rnnfast layer or model that the ONNX graph in ``path`` computes, in evaluation mode.

    Graphs that rnnfast exported load as the model they came from (its class, config and weights). Other graphs
    load when they are recurrent layers or language models built of ONNX ``LSTM``, ``GRU`` or ``RNN`` nodes in the
    usual surroundings (PyTorch's exports of ``nn.LSTM``/``nn.GRU``/``nn.RNN``, uni- or bidirectional, stacked,
    batch_first, and of Embedding -> recurrent stack -> Linear language models): they give ``LSTM``, ``GRU``,
    ``RNN`` or ``LanguageModel``. Anything else raises ValueError naming the node, its operator and why:
    non-default activations, peepholes, ``clip``, ``input_forget``, GRU's ``linear_before_reset=0``, lengths
    inside the graph, and every operator whose effect rnnfast's models do not have.
    """
    onnx = _onnx()
    from .io import _check_path

    path = _check_path(path)
    proto = _read(onnx, path)
    props = {p.key: p.value for p in proto.metadata_props}

    def fail(problem: str):
        raise ValueError(f"{path}: {problem}") from None

    try:
        if META_PREFIX + "class" in props:
            return _load_exported(onnx, proto, props)
        return _GraphReader(onnx, proto).model()
    except _Refused as exc:
        fail(str(exc))


def _read(onnx, path: str):
    """The ModelProto in ``path`` with its external data, or one clear ValueError."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: {path} does not exist or is not a file")
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: the bytes are not a model
        raise ValueError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'unparsable'})"
        ) from None
    if proto.ir_version <= 0 or not proto.HasField("graph") or len(proto.graph.node) == 0:
        raise ValueError(
            f"{path}: not an ONNX model (no IR version or no graph nodes); truncated, or another kind of file"
        )
    base = os.path.dirname(os.path.abspath(path))
    tensors = list(proto.graph.initializer) + [
        n.attribute[0].t for n in proto.graph.node if n.op_type == "Constant" and n.attribute and n.attribute[0].t.name
    ]
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        target = os.path.normpath(os.path.join(base, location))
        if not location or os.path.isabs(location) or os.path.commonpath([base, target]) != base:
            raise ValueError(
                f"{path}: initializer {tensor.name!r} keeps its data in {location!r}, expected a file next to the model"
            )
        if not os.path.isfile(target):
            raise ValueError(
                f"{path}: the external data file {location!r} of initializer {tensor.name!r} is missing "
                f"(expected {target})"
            )
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", -1))
        except ValueError:
            raise ValueError(f"{path}: initializer {tensor.name!r} has a malformed offset or length") from None
        if offset < 0 or (length >= 0 and offset + length > os.path.getsize(target)):
            raise ValueError(
                f"{path}: the external data file {location!r} is shorter than initializer "
                f"{tensor.name!r} needs (truncated?)"
            )
    try:
        onnx.external_data_helper.load_external_data_for_model(proto, base)
    except Exception as exc:
        raise ValueError(f"{path}: cannot read external data ({type(exc).__name__}: {exc})") from None
    return proto


def _array(onnx, tensor) -> np.ndarray:
    try:
        return onnx.numpy_helper.to_array(tensor)
    except Exception as exc:
        raise _Refused(f"tensor {tensor.name!r} cannot be read ({type(exc).__name__}: {exc})") from None


# ----- graphs that rnnfast exported ---------------------------------------------------------------------------
def _recurrent_parts(model):
    """(initializer prefix, recurrent layer) of every recurrent stack in ``model``."""
    if type(model).__name__ in ("RNN", "LSTM", "GRU"):
        return [("", model)]
    parts = [("rnn.", model.rnn)]
    if getattr(model, "char_features", False):
        parts.append(("char_rnn.", model.char_rnn))
    return parts


def _load_exported(onnx, proto, props: dict):
    from . import models, seqmodels  # noqa: F401 - every model class registered
    from . import module as _module

    name = props[META_PREFIX + "class"]
    if name not in _EXPORTABLE:
        raise _Refused(f"metadata {META_PREFIX}class is {name!r}, expected one of {', '.join(_EXPORTABLE)}")

    def field(key: str):
        try:
            return json.loads(props[META_PREFIX + key])
        except (KeyError, ValueError):
            raise _Refused(
                f"metadata {META_PREFIX}{key} is missing or not JSON, in a graph that says rnnfast exported it"
            ) from None

    config, options = field("config"), field("export")
    if not isinstance(config, dict) or not isinstance(options, dict) or "dynamic_axes" not in options:
        raise _Refused(f"metadata {META_PREFIX}config or {META_PREFIX}export is not the dict rnnfast writes")
    try:
        model = _module.MODULE_TYPES[name](**config)
    except (TypeError, ValueError, MemoryError) as exc:
        raise _Refused(f"metadata {META_PREFIX}config does not describe a {name} ({exc})") from None
    inits = {t.name: t for t in proto.graph.initializer}

    def weight(key: str, shape) -> np.ndarray:
        if key not in inits:
            raise _Refused(f"initializer {key!r} of the {name} is missing")
        value = _array(onnx, inits[key])
        if value.shape != tuple(shape):
            raise _Refused(f"initializer {key!r} has shape {value.shape}, expected {tuple(shape)} for this {name}")
        return value

    recurrent = set()
    for prefix, rnn in _recurrent_parts(model):
        for layer in range(rnn.num_layers):
            W, R, B = _onnx_layer_weights(rnn, layer)
            _set_layer_weights(
                rnn,
                layer,
                weight(f"{prefix}W_l{layer}", W.shape),
                weight(f"{prefix}R_l{layer}", R.shape),
                weight(f"{prefix}B_l{layer}", B.shape) if B is not None else None,
            )
        recurrent.update(prefix + key for key in rnn.named_parameters())
    for key, value in model.named_parameters().items():
        if key not in recurrent:
            value[...] = weight(key, value.shape)
    model.eval()
    opsets = {o.domain: o.version for o in proto.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    metadata = {}
    for key, value in props.items():
        if not key.startswith(META_PREFIX):
            try:
                metadata[key] = json.loads(value)
            except ValueError:
                raise _Refused(f"metadata {key!r} is not JSON, as rnnfast writes it") from None
    try:
        again = _build(model, opset, options["dynamic_axes"], metadata)
    except (TypeError, ValueError) as exc:
        raise _Refused(f"the {name} in its metadata cannot be exported again ({exc})") from None
    difference = _graph_difference(onnx, proto.graph, again.graph)
    if difference:
        from . import __version__

        raise _Refused(
            f"the graph is not what rnnfast {__version__} exports for its metadata (a {name} written by "
            f"rnnfast {props.get(META_PREFIX + 'version', '?')}): {difference}"
        )
    return model


def _graph_difference(onnx, graph, expected) -> str:
    """'' when ``graph`` has the nodes, inputs, outputs and initializers of ``expected``; else the first
    difference."""
    for kind in ("input", "output"):
        got = [v.SerializeToString(deterministic=True) for v in getattr(graph, kind)]
        want = [v.SerializeToString(deterministic=True) for v in getattr(expected, kind)]
        if got != want:
            return (
                f"its {kind}s are {[v.name for v in getattr(graph, kind)]}, expected "
                f"{[v.name for v in getattr(expected, kind)]} with their types and shapes"
            )
    if len(graph.node) != len(expected.node):
        return f"it has {len(graph.node)} nodes, expected {len(expected.node)}"
    for node, want in zip(graph.node, expected.node):
        if node.SerializeToString(deterministic=True) != want.SerializeToString(deterministic=True):
            return f"node {node.name!r} ({node.op_type}) differs from the expected {want.name!r} ({want.op_type})"
    got = {t.name: t for t in graph.initializer}
    want = {t.name: t for t in expected.initializer}
    if sorted(got) != sorted(want):
        return f"its initializers are {sorted(got)}, expected {sorted(want)}"
    for key, tensor in want.items():
        a, b = _array(onnx, got[key]), _array(onnx, tensor)
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
            return f"initializer {key!r} differs"
    return ""


# ----- other graphs: following each tensor through the nodes -------------------------------------------------
# A size is a monomial (integer factor, sorted symbol names), so that symbolic sizes multiply and compare exactly:
# (6, ()) is 6, (1, ("B", "T")) is B*T.
def _size(value):
    return (int(value), ()) if isinstance(value, (int, np.integer)) else (1, (value,))


def _mul(a, b):
    return (a[0] * b[0], tuple(sorted(a[1] + b[1])))


def _divide(a, b):
    """a / b, or None when b does not divide a."""
    syms = list(a[1])
    for s in b[1]:
        if s not in syms:
            return None
        syms.remove(s)
    if b[0] == 0 or a[0] % b[0]:
        return None
    return (a[0] // b[0], tuple(syms))


def _show(size) -> str:
    return "*".join([str(size[0])] * (size[0] != 1 or not size[1]) + list(size[1]))


def _shown(sizes) -> str:
    return "(" + ", ".join(_show(s) for s in sizes) + ")"


class _Const:
    """A tensor whose value is known when reading the graph (initializers, Constant nodes, and what they give)."""

    def __init__(self, value):
        self.value = np.asarray(value)


class _Dims:
    """Integer tensor (1-d, or 0-d when ``scalar``) of sizes some of which vary: what Shape gives and shape
    arithmetic makes of it."""

    def __init__(self, items, scalar=False):
        self.items = list(items)
        self.scalar = scalar


class _Opaque:
    """A node output that no rnnfast model reads; any use of it is refused."""

    def __init__(self, what: str):
        self.what = what


class _Zeros:
    """A tensor of zeros of a (possibly symbolic) shape: PyTorch's default initial states."""

    def __init__(self, shape):
        self.shape = tuple(shape)


class _Data:
    """A tensor computed from graph inputs. ``axes``: for each axis, the atomic axes it holds (labels, e.g.
    ("x", 0) for an input's axis, ("D", l) and ("H", l) for layer l's directions and hidden units), merged in
    row-major order. ``kind``: "input" (a float graph input), "ids" (an integer one), "seq" (the model's value
    along its pipeline ``stage``), "state" (rows ``rows`` of an input, an initial state), "final" (final states
    ``which`` "h"/"c" of ``layers`` (first, end))."""

    def __init__(self, kind, axes=(), stage=(), dtype=None, **info):
        self.kind = kind
        self.axes = tuple(tuple(a) for a in axes)
        self.stage = tuple(stage)
        self.dtype = dtype
        self.info = info


_DEFAULT_ACTIVATIONS = {"LSTM": ("sigmoid", "tanh", "tanh"), "GRU": ("sigmoid", "tanh"), "RNN": ("tanh",)}
_CELL_OF = {"LSTM": "lstm", "GRU": "gru"}
_SUPPORTED_OPS = (
    "LSTM, GRU, RNN, Gather, MatMul, Gemm, Add, Transpose, Reshape, Squeeze, Unsqueeze, Concat, Slice, "
    "Shape, Constant, ConstantOfShape, Expand, Identity, Cast, Dropout and shape arithmetic"
)


class _GraphReader:
    """Reads a graph of recurrent nodes and decides which rnnfast layer or LanguageModel computes it."""

    def __init__(self, onnx, proto):
        self.onnx = onnx
        self.proto = proto
        self.values = {}
        self.sizes = {}  # atomic axis label -> size
        self.layers = []
        self.embedding = None
        self.head = None  # the output layer's weight (V, F)
        self.biases = []  # biases added to its output (at most one reaches the graph output)
        self.time = self.batch = None  # the atomic labels that the first recurrent node reads as time and batch
        self.dtype = None

    # ----- reading ------------------------------------------------------------------------------------------
    def model(self):
        graph = self.proto.graph
        opsets = {o.domain or "ai.onnx": o.version for o in self.proto.opset_import}
        if len(graph.sparse_initializer):
            raise _Refused("sparse initializers are not supported")
        for tensor in graph.initializer:
            self.values[tensor.name] = _Const(_array(self.onnx, tensor))
        for value in graph.input:
            if value.name not in self.values:
                self.values[value.name] = self._graph_input(value)
        for k, node in enumerate(graph.node):
            where = f"node {node.name or f'#{k}'!r} ({node.op_type})"
            if node.domain not in ("", "ai.onnx"):
                raise _Refused(
                    f"{where}: operator of domain {node.domain!r}; rf.onnx.load reads standard ONNX "
                    f"operators ({_SUPPORTED_OPS})"
                )
            try:
                outputs = self._node(node, opsets.get("ai.onnx", 0))
            except _Refused as exc:
                raise _Refused(f"{where}: {exc}") from None
            except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:  # a malformed node
                raise _Refused(f"{where}: cannot be read ({type(exc).__name__}: {exc})") from None
            for name, value in zip(node.output, outputs):
                if name:
                    self.values[name] = value
        return self._build()

    def _graph_input(self, value):
        tensor_type = value.type.tensor_type
        if not value.type.HasField("tensor_type") or not tensor_type.HasField("shape"):
            raise _Refused(f"graph input {value.name!r} is not a tensor of known rank")
        dtype = self.onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        axes = []
        for k, d in enumerate(tensor_type.shape.dim):
            label = (value.name, k)
            self.sizes[label] = (
                _size(d.dim_value) if d.HasField("dim_value") else _size(d.dim_param or f"{value.name}[{k}]")
            )
            axes.append([label])
        if dtype.kind == "f":
            return _Data("input", axes, (("input", value.name),), dtype)
        if dtype.kind in "iu":
            return _Data("ids", axes, (("ids", value.name),), dtype)
        raise _Refused(f"graph input {value.name!r} has element type {dtype}, expected floats or integer ids")

    def _get(self, name: str, optional: bool = False):
        if name == "":
            if optional:
                return None
            raise _Refused("a required input is empty")
        if name not in self.values:
            raise _Refused(f"input {name!r} is neither a graph input, an initializer nor an earlier node's output")
        value = self.values[name]
        if isinstance(value, _Opaque):
            raise _Refused(f"input {name!r} is {value.what}, which rnnfast's models do not use")
        return value

    def _const(self, name: str, what: str) -> np.ndarray:
        value = self._get(name)
        if isinstance(value, _Dims) and all(not s[1] for s in value.items):
            return np.array([s[0] for s in value.items], np.int64).reshape(() if value.scalar else -1)
        if not isinstance(value, _Const):
            raise _Refused(
                f"{what} must be a constant (an initializer or Constant), got a value computed from the graph inputs"
            )
        return value.value

    def _size_of(self, axis) -> tuple:
        out = (1, ())
        for label in axis:
            out = _mul(out, self.sizes[label])
        return out

    def _shape(self, data: _Data) -> list:
        return [self._size_of(axis) for axis in data.axes]

    def _features(self, axis) -> tuple:
        """An axis' atomic labels without directions of size 1 (a unidirectional layer's D axis)."""
        return tuple(label for label in axis if not (label[0] == "D" and self.sizes[label] == (1, ())))

    # ----- nodes --------------------------------------------------------------------------------------------
    def _node(self, node, opset: int):
        attrs = {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}
        op = node.op_type
        if op in ("LSTM", "GRU", "RNN"):
            return self._recurrent(node, attrs)
        if op == "Constant":
            return [self._constant(attrs)]
        args = [self._get(name, optional=True) for name in node.input]
        if args and all(isinstance(a, _Const) or a is None for a in args) and op in _NUMPY_OPS:
            return [_Const(_NUMPY_OPS[op](self, [None if a is None else a.value for a in args], attrs, opset))]
        handler = getattr(self, "_op_" + op, None)
        if handler is None:
            raise _Refused(f"operator not supported by rf.onnx.load (it reads {_SUPPORTED_OPS})")
        return handler(node, args, attrs, opset)

    def _constant(self, attrs):
        if "value" in attrs:
            return _Const(_array(self.onnx, attrs["value"]))
        for key, dtype in (
            ("value_float", np.float32),
            ("value_floats", np.float32),
            ("value_int", np.int64),
            ("value_ints", np.int64),
        ):
            if key in attrs:
                return _Const(np.asarray(attrs[key], dtype))
        raise _Refused(f"a Constant holding {sorted(attrs)} is not supported")

    def _op_Identity(self, node, args, attrs, opset):
        return [args[0]]

    def _op_Dropout(self, node, args, attrs, opset):
        if len(args) > 2 and args[2] is not None and not (isinstance(args[2], _Const) and not args[2].value.any()):
            raise _Refused("dropout in training mode changes the values; rnnfast models run without it")
        return [args[0], _Opaque("the mask output of Dropout")]

    def _op_Cast(self, node, args, attrs, opset):
        x = args[0]
        to = self.onnx.helper.tensor_dtype_to_np_dtype(attrs["to"])
        if isinstance(x, _Dims) and to.kind in "iu":
            return [x]
        if isinstance(x, _Data) and (to == x.dtype or (x.kind == "ids" and to.kind in "iu")):
            return [x]
        raise _Refused(f"a cast to {to} changes the values; rnnfast computes in the model's own dtype")

    def _op_Shape(self, node, args, attrs, opset):
        x = args[0]
        if isinstance(x, _Data) and x.kind in ("input", "ids", "seq", "state"):
            items = self._shape(x)
        elif isinstance(x, _Zeros):
            items = list(x.shape)
        else:
            raise _Refused("Shape of this value is not supported")
        start, end = attrs.get("start", 0), attrs.get("end", None)
        return [_Dims(items[start:end] if end is not None else items[start:])]

    def _op_Gather(self, node, args, attrs, opset):
        data, index = args
        axis = attrs.get("axis", 0)
        if isinstance(data, _Dims) and isinstance(index, _Const):
            if axis != 0 or data.scalar:
                raise _Refused(f"axis {axis} of a shape vector")
            n = len(data.items)
            picked = [
                data.items[_clip(i, n) if i < 0 else i] for i in index.value.astype(np.int64).reshape(-1) if -n <= i < n
            ]
            if len(picked) != index.value.size:
                raise _Refused(f"index {index.value.tolist()} out of range for a shape of {n} entries")
            return [_Dims(picked, scalar=index.value.ndim == 0)]
        if isinstance(data, _Const) and isinstance(index, _Data) and index.kind == "ids":
            if self.embedding is not None or axis != 0 or data.value.ndim != 2 or data.value.dtype.kind != "f":
                raise _Refused("only one embedding lookup (rows of a 2-d float initializer, axis 0) is supported")
            if len(index.stage) != 1:
                raise _Refused("the embedding must look up the graph's token ids")
            self.embedding = data.value
            self.sizes[("E",)] = _size(data.value.shape[1])
            return [_Data("seq", list(index.axes) + [[("E",)]], index.stage + (("embed",),), data.value.dtype)]
        raise _Refused(
            "only embedding lookups (a weight matrix indexed by the token ids) and shape arithmetic are supported"
        )

    def _op_Transpose(self, node, args, attrs, opset):
        x = args[0]
        if not isinstance(x, _Data) or x.kind not in ("input", "ids", "seq"):
            raise _Refused("transposing this value is not supported")
        perm = attrs.get("perm", list(range(len(x.axes)))[::-1])
        if sorted(perm) != list(range(len(x.axes))):
            raise _Refused(f"perm {perm} does not fit {len(x.axes)} axes")
        kind = "ids" if x.kind == "ids" else "seq"
        return [_Data(kind, [x.axes[p] for p in perm], x.stage, x.dtype)]

    def _axes_argument(self, args, attrs, opset, what):
        if opset >= 13 and len(args) > 1:
            return [int(a) for a in np.asarray(self._const_value(args[1], what)).reshape(-1)]
        return [int(a) for a in attrs.get("axes", [])]

    def _const_value(self, value, what):
        if isinstance(value, _Const):
            return value.value
        if isinstance(value, _Dims) and all(not s[1] for s in value.items):
            return np.array([s[0] for s in value.items], np.int64)
        raise _Refused(f"{what} must be constant")

    def _op_Squeeze(self, node, args, attrs, opset):
        x = args[0]
        axes = self._axes_argument(args, attrs, opset, "the axes")
        if isinstance(x, _Dims):
            if x.items and len(x.items) == 1 and axes in ([], [0]):
                return [_Dims(x.items, scalar=True)]
            raise _Refused("squeezing this shape is not supported")
        if not isinstance(x, _Data) or x.kind not in ("seq", "input"):
            raise _Refused("squeezing this value is not supported")
        n = len(x.axes)
        axes = sorted(a % n for a in axes) if axes else [k for k in range(n) if self._size_of(x.axes[k]) == (1, ())]
        for a in axes:
            if self._features(x.axes[a]) or self._size_of(x.axes[a]) != (1, ()):
                raise _Refused(f"axis {a} is not a unidirectional layer's direction axis of size 1")
        return [_Data("seq", [ax for k, ax in enumerate(x.axes) if k not in axes], x.stage, x.dtype)]

    def _op_Unsqueeze(self, node, args, attrs, opset):
        x = args[0]
        axes = self._axes_argument(args, attrs, opset, "the axes")
        if isinstance(x, _Dims) and x.scalar and axes == [0]:
            return [_Dims(x.items)]
        if isinstance(x, _Data) and x.kind == "seq":
            out = list(x.axes)
            for a in sorted(a % (len(out) + len(axes)) for a in axes):
                out.insert(a, ())
            return [_Data("seq", out, x.stage, x.dtype)]
        raise _Refused("unsqueezing this value is not supported")

    def _op_Concat(self, node, args, attrs, opset):
        axis = attrs.get("axis", 0)
        if all(isinstance(a, (_Dims, _Const)) for a in args):
            items = []
            if axis not in (0, -1):
                raise _Refused(f"axis {axis} of shape vectors")
            for a in args:
                if isinstance(a, _Dims) and a.scalar:
                    raise _Refused("concatenating a 0-d shape entry (Unsqueeze it first)")
                if isinstance(a, _Dims):
                    items += a.items
                elif a.value.ndim == 1 and a.value.dtype.kind in "iu":
                    items += [_size(int(v)) for v in a.value]
                else:
                    raise _Refused("concatenating shapes with something else is not supported")
            return [_Dims(items)]
        if all(isinstance(a, _Data) and a.kind == "final" for a in args) and axis == 0:
            which = {a.info["which"] for a in args}
            first = args[0].info["layers"][0]
            end = first
            for a in args:
                if len(which) != 1 or a.info["layers"][0] != end:
                    raise _Refused("only the final states of consecutive layers, in order, may be concatenated")
                end = a.info["layers"][1]
            return [_Data("final", stage=(), dtype=args[0].dtype, which=which.pop(), layers=(first, end))]
        raise _Refused(
            "concatenation is supported for shapes and for the layers' final states (axis 0), not for "
            "these inputs (rnnfast's models concatenate nothing else)"
        )

    def _op_Slice(self, node, args, attrs, opset):
        x = args[0]
        if opset >= 10:
            starts, ends = (np.asarray(self._const_value(a, "starts and ends")).reshape(-1) for a in args[1:3])
            axes = (
                np.asarray(self._const_value(args[3], "axes")).reshape(-1)
                if len(args) > 3 and args[3] is not None
                else np.arange(len(starts))
            )
            steps = (
                np.asarray(self._const_value(args[4], "steps")).reshape(-1)
                if len(args) > 4 and args[4] is not None
                else np.ones(len(starts), np.int64)
            )
        else:
            starts, ends = np.asarray(attrs["starts"]), np.asarray(attrs["ends"])
            axes, steps = np.asarray(attrs.get("axes", range(len(starts)))), np.ones(len(starts), np.int64)
        if (
            any(a.dtype.kind not in "iu" or a.shape != starts.shape for a in (ends, axes, steps))
            or starts.dtype.kind not in "iu"
        ):
            raise _Refused("starts, ends, axes and steps must be integer vectors of one length")
        if isinstance(x, _Dims):
            if list(axes) != [0] or steps[0] != 1:
                raise _Refused("only plain slices of a shape are supported")
            return [_Dims(x.items[_clip(starts[0], len(x.items)) : _clip(ends[0], len(x.items))])]
        if isinstance(x, _Zeros):
            shape = list(x.shape)
            for s, e, a, st in zip(starts, ends, axes, steps):
                if shape[a][1] or st != 1:
                    raise _Refused("slicing zeros along an axis whose size varies is not supported")
                n = shape[a][0]
                shape[a] = (max(0, _clip(e, n) - _clip(s, n)), ())
            return [_Zeros(shape)]
        if isinstance(x, _Data) and x.kind in ("input", "state"):
            n = self._size_of(x.axes[0])
            if list(axes) != [0] or steps[0] != 1 or n[1]:
                raise _Refused("an initial state may be sliced along its first axis (layers*directions) only")
            offset = x.info.get("rows", (0, n[0]))[0]
            s, e = _clip(starts[0], n[0]), _clip(ends[0], n[0])
            label = ("rows", node.output[0])
            self.sizes[label] = _size(e - s)
            return [_Data("state", [[label]] + list(x.axes[1:]), x.stage, x.dtype, rows=(offset + s, offset + e))]
        raise _Refused("slicing is supported for shapes, zeros and initial states only")

    def _op_ConstantOfShape(self, node, args, attrs, opset):
        value = _array(self.onnx, attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
        if isinstance(args[0], _Dims) and not value.any():
            return [_Zeros(args[0].items)]
        raise _Refused("only zeros of a shape computed from the inputs are supported")

    def _op_Expand(self, node, args, attrs, opset):
        x, shape = args
        if (
            isinstance(x, (_Const, _Zeros))
            and isinstance(shape, _Dims)
            and (isinstance(x, _Zeros) or not x.value.any())
        ):
            items = list(shape.items)
            current = [_size(d) for d in x.value.shape] if isinstance(x, _Const) else list(x.shape)
            if len(current) > len(items):
                raise _Refused("expanding to fewer dimensions")
            current = [(1, ())] * (len(items) - len(current)) + current
            return [_Zeros([c if t == (1, ()) else t for c, t in zip(current, items)])]
        raise _Refused("only zeros expanded to a shape (default initial states) are supported")

    def _binary(self, op, args):
        a, b = args
        if isinstance(a, _Dims) or isinstance(b, _Dims):
            items = [x for x in (a, b)]
            lists = []
            for x in items:
                if isinstance(x, _Dims):
                    lists.append(x.items)
                elif isinstance(x, _Const) and x.value.dtype.kind in "iu" and x.value.ndim <= 1:
                    lists.append([_size(int(v)) for v in x.value.reshape(-1)])
                else:
                    raise _Refused("shape arithmetic with this value is not supported")
            n = max(len(lists[0]), len(lists[1]))
            if op != "Mul" or any(len(lst) not in (1, n) for lst in lists):
                raise _Refused("only products of shape entries are supported")
            p, q = (lst * n if len(lst) == 1 else lst for lst in lists)
            return [
                _Dims(
                    [_mul(x, y) for x, y in zip(p, q)],
                    scalar=all(isinstance(x, _Dims) and x.scalar for x in items if isinstance(x, _Dims)),
                )
            ]
        return None

    def _op_Mul(self, node, args, attrs, opset):
        out = self._binary("Mul", args)
        if out is None:
            raise _Refused("multiplying these values is not supported")
        return out

    def _op_Add(self, node, args, attrs, opset):
        out = self._binary("Add", args) if any(isinstance(a, _Dims) for a in args) else None
        if out is not None:
            return out
        data = [a for a in args if isinstance(a, _Data)]
        const = [a for a in args if isinstance(a, _Const)]
        if (
            len(data) == 1
            and len(const) == 1
            and data[0].kind == "seq"
            and data[0].stage[-1:] == (("linear",),)
            and self._features(data[0].axes[-1]) == (("V",),)
        ):
            b = const[0].value
            V = self.head.shape[0]
            if b.size != V or b.shape[-1] != V or b.ndim > len(data[0].axes):
                raise _Refused(f"the bias after the output layer has shape {b.shape}, expected ({V},)")
            self.biases.append(b.reshape(V))
            return [_Data("seq", data[0].axes, data[0].stage + (("bias", len(self.biases) - 1),), data[0].dtype)]
        raise _Refused("addition is supported for the output layer's bias only")

    def _op_MatMul(self, node, args, attrs, opset):
        x, w = args
        if not (isinstance(x, _Data) and x.kind == "seq" and isinstance(w, _Const) and w.value.ndim == 2):
            raise _Refused("only an output layer (the recurrent output times a weight initializer) is supported")
        return [self._head(x, w.value.T, None)]

    def _op_Gemm(self, node, args, attrs, opset):
        x, w = args[0], args[1]
        c = args[2] if len(args) > 2 else None
        if not (
            isinstance(x, _Data)
            and x.kind == "seq"
            and len(x.axes) == 2
            and isinstance(w, _Const)
            and (c is None or isinstance(c, _Const))
        ):
            raise _Refused("only an output layer (recurrent output rows times a weight initializer) is supported")
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            raise _Refused("transA, alpha and beta other than their defaults are not supported")
        W = w.value if attrs.get("transB", 0) else w.value.T
        bias = None
        if c is not None:
            if c.value.size != W.shape[0]:
                raise _Refused(f"bias of shape {c.value.shape}, expected ({W.shape[0]},)")
            bias = c.value.reshape(-1)
        return [self._head(x, W, bias)]

    def _head(self, x: _Data, W: np.ndarray, bias):
        last = x.stage[-1] if x.stage else None
        if self.head is not None or last is None or last[0] != "rnn":
            raise _Refused("a linear layer is supported only right after the recurrent layers, once")
        features = self._features(x.axes[-1])
        if features != self._layer_features(last[1]):
            raise _Refused("the output layer does not read the last recurrent layer's features as its last axis")
        if W.shape[1] != self._size_of(x.axes[-1])[0]:
            raise _Refused(f"weight of shape {W.T.shape} does not fit {self._size_of(x.axes[-1])[0]} features")
        self.head = np.ascontiguousarray(W)
        self.sizes[("V",)] = _size(W.shape[0])
        stage = x.stage + (("linear",),)
        if bias is not None:
            self.biases.append(bias)
            stage += (("bias", len(self.biases) - 1),)
        return _Data("seq", list(x.axes[:-1]) + [[("V",)]], stage, x.dtype)

    def _layer_features(self, layer: int) -> tuple:
        return tuple(
            label for label in (("D", layer), ("H", layer)) if not (label[0] == "D" and self.sizes[label] == (1, ()))
        )

    def _op_Reshape(self, node, args, attrs, opset):
        x, shape = args
        if isinstance(x, _Dims):
            target = np.asarray(self._const_value(shape, "the shape")).reshape(-1)
            if list(target) in ([-1], [1], [len(x.items)]):
                return [_Dims(x.items)]
            raise _Refused("reshaping a shape is supported to a vector only")
        if not isinstance(x, _Data) or x.kind not in ("seq", "input"):
            raise _Refused("reshaping this value is not supported")
        if isinstance(shape, _Const):
            target = [_size(int(v)) for v in shape.value.reshape(-1)]
        elif isinstance(shape, _Dims):
            target = list(shape.items)
        else:
            raise _Refused("the target shape must be constant or computed from shapes")
        current = self._shape(x)
        allowzero = attrs.get("allowzero", 0)
        total = (1, ())
        for size in current:
            total = _mul(total, size)
        known, infer = (1, ()), None
        for k, size in enumerate(target):
            if size == (0, ()) and not allowzero:
                if k >= len(current):
                    raise _Refused("a 0 in the shape past the input's rank")
                target[k] = size = current[k]
            if size == (-1, ()):
                if infer is not None:
                    raise _Refused("two -1 in the shape")
                infer = k
            else:
                known = _mul(known, size)
        if infer is not None:
            rest = _divide(total, known)
            if rest is None:
                raise _Refused(
                    f"reshaping {_shown(current)} to {_shown(target)}: the shape fixes a size that the "
                    "graph's inputs let vary (an exporter specialised it to its example input), or mixes "
                    "axes"
                )
            target[infer] = rest
        atoms = [(label, self.sizes[label]) for axis in x.axes for label in axis]
        groups, i = [], 0
        for size in target:
            group, acc = [], (1, ())
            while acc != size:
                if i >= len(atoms) or _divide(size, _mul(acc, atoms[i][1])) is None:
                    raise _Refused(
                        f"reshaping {_shown(current)} to {_shown(target)} mixes axes, or fixes a size "
                        "that the graph's inputs let vary (only merging or splitting whole axes is "
                        "supported)"
                    )
                acc = _mul(acc, atoms[i][1])
                group.append(atoms[i][0])
                i += 1
            groups.append(group)
        while i < len(atoms):
            if atoms[i][1] != (1, ()) or not groups:
                raise _Refused(f"reshaping {_shown(current)} to {_shown(target)} drops values")
            groups[-1].append(atoms[i][0])
            i += 1
        return [_Data("seq", groups, x.stage, x.dtype)]

    # ----- the recurrent nodes ------------------------------------------------------------------------------
    def _recurrent(self, node, attrs):
        op = node.op_type
        layer = len(self.layers)
        inputs = list(node.input) + [""] * (8 - len(node.input))
        direction = attrs.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if direction not in ("forward", "bidirectional"):
            raise _Refused(f"direction {direction!r}: rnnfast's layers run forward or in both directions")
        D = 2 if direction == "bidirectional" else 1
        if attrs.get("layout", 0) != 0:
            raise _Refused(
                "layout=1 (batch-major inputs and states) is not supported; PyTorch's exports use "
                "layout 0 with Transpose nodes"
            )
        if "clip" in attrs:
            raise _Refused(f"clip={attrs['clip']}: rnnfast's cells do not clip their gate inputs")
        if attrs.get("input_forget", 0):
            raise _Refused("input_forget=1 couples the input and forget gates; rnnfast's LSTM has them separate")
        if op == "GRU" and attrs.get("linear_before_reset", 0) != 1:
            raise _Refused(
                "linear_before_reset=0 applies the reset gate before the recurrent product; rnnfast's "
                "(and PyTorch's) GRU multiplies it into W_hn h + b_hn (linear_before_reset=1)"
            )
        acts = tuple(
            a.decode().lower() if isinstance(a, bytes) else str(a).lower() for a in attrs.get("activations", [])
        )
        default = _DEFAULT_ACTIVATIONS[op]
        cell = _CELL_OF.get(op)
        if op == "RNN":
            if acts in ((), ("tanh",) * D):
                cell = "rnn_tanh"
            elif acts == ("relu",) * D:
                cell = "rnn_relu"
            else:
                raise _Refused(f"activations {list(acts)}: rnnfast's RNN uses Tanh or Relu in every direction")
        elif acts not in ((), default * D):
            raise _Refused(f"activations {list(acts)}: rnnfast's {op} uses the defaults {list(default * D)}")
        if "hidden_size" not in attrs:
            raise _Refused("hidden_size is missing")
        H = int(attrs["hidden_size"])
        G = len(_GATE_ORDER[cell])
        x = self._get(inputs[0])
        if not isinstance(x, _Data) or x.kind not in ("input", "seq") or len(x.axes) != 3:
            raise _Refused("X must be a (T, B, features) tensor computed from the graph inputs")
        if layer == 0:
            if x.stage[-1][0] not in ("input", "embed") or any(len(a) != 1 for a in x.axes[:2]):
                raise _Refused("the first recurrent layer must read the graph's input sequence (or its embedding)")
            self.time, self.batch = x.axes[0][0], x.axes[1][0]
            self.first_stage = x.stage
            source = x.stage[0][1]
            feature = ("E",) if x.stage[-1] == ("embed",) else (source, 2)
            if {self.time, self.batch} != {(source, 0), (source, 1)} or x.axes[2] != (feature,):
                raise _Refused(
                    f"the first recurrent layer must read the graph input {source!r} as it is, "
                    "(T, B, features) or (B, T, features), or its embedding"
                )
        else:
            previous = self.layers[-1]
            if x.stage != previous["stage"] or self._features(x.axes[2]) != self._layer_features(layer - 1):
                raise _Refused(f"layer {layer} does not read the previous layer's output sequence (T, B, D*H)")
            if self._features(x.axes[0]) != (self.time,) or self._features(x.axes[1]) != (self.batch,):
                raise _Refused(f"layer {layer} reads its input with the time and batch axes in another order")
        features = self._size_of(x.axes[2])
        if features[1]:
            raise _Refused("the input's feature size must be fixed")
        n_in = features[0]
        W = self._weight(inputs[1], "W", (D, G * H, n_in))
        R = self._weight(inputs[2], "R", (D, G * H, H))
        B = self._weight(inputs[3], "B", (D, 2 * G * H)) if inputs[3] else None
        dtypes = {W.dtype, R.dtype} | ({B.dtype} if B is not None else set()) | {x.dtype}
        if len(dtypes) != 1 or W.dtype not in (np.float32, np.float64):
            raise _Refused(f"weights and input of types {sorted(map(str, dtypes))}, expected one of float32, float64")
        if self.dtype is not None and self.dtype != W.dtype:
            raise _Refused("layers of different dtypes")
        self.dtype = W.dtype
        if inputs[4]:
            raise _Refused(
                "sequence_lens inside the graph is not supported: rnnfast takes lengths as an argument "
                "of forward(); export the graph without them"
            )
        if op == "LSTM" and inputs[7]:
            P = self._get(inputs[7])
            if not (isinstance(P, _Zeros) or (isinstance(P, _Const) and not P.value.any())):
                raise _Refused("peepholes (input P): rnnfast's LSTM has no peephole connections")
        batch = self._size_of(x.axes[1])
        states = {"h": self._initial(inputs[5], D, H, batch, "initial_h")}
        if op == "LSTM":
            states["c"] = self._initial(inputs[6], D, H, batch, "initial_c")
        for label, size in ((("D", layer), D), (("H", layer), H)):
            self.sizes[label] = _size(size)
        stage = x.stage + (("rnn", layer),)
        self.layers.append(
            {
                "op": op,
                "cell": cell,
                "D": D,
                "H": H,
                "I": n_in,
                "W": W,
                "R": R,
                "B": B,
                "states": states,
                "stage": stage,
                "x": x,
            }
        )
        y = _Data("seq", [x.axes[0], [("D", layer)], x.axes[1], [("H", layer)]], stage, x.dtype)
        finals = [_Data("final", dtype=x.dtype, which=which, layers=(layer, layer + 1)) for which in ("h", "c")]
        return [y, finals[0]] + ([finals[1]] if op == "LSTM" else [])

    def _weight(self, name: str, what: str, shape) -> np.ndarray:
        value = np.asarray(self._const(name, what))
        if value.shape != tuple(shape):
            raise _Refused(f"{what} has shape {value.shape}, expected {tuple(shape)} (directions, gates*hidden, ...)")
        return value

    def _initial(self, name: str, D: int, H: int, batch, what: str):
        """None (zeros) or (graph input name, first row, end row) of a layer's initial state."""
        value = self._get(name, optional=True)
        if value is None:
            return None
        if isinstance(value, _Const) and not value.value.any():
            value = _Zeros([_size(n) for n in value.value.shape])
        if isinstance(value, _Zeros):
            if len(value.shape) != 3 or value.shape != ((D, ()), batch, (H, ())):
                raise _Refused(f"{what}: zeros of shape {_shown(value.shape)}, expected ({D}, {_show(batch)}, {H})")
            return None
        if isinstance(value, _Data) and value.kind in ("input", "state") and len(value.axes) == 3:
            source = value.stage[0][1] if value.stage and value.stage[0][0] == "input" else None
            first = self._size_of(value.axes[0])
            rows = value.info.get("rows", (0, first[0]) if not first[1] else None)
            if source is None or rows is None or rows[1] - rows[0] != D:
                raise _Refused(f"{what} must be {D} rows of a graph input (num_layers*directions, B, H)")
            if self._size_of(value.axes[2]) != (H, ()):
                raise _Refused(f"{what} has {_show(self._size_of(value.axes[2]))} hidden units, expected {H}")
            return (source, rows[0], rows[1])
        raise _Refused(f"{what} must be zeros or rows of a graph input")

    # ----- the model ----------------------------------------------------------------------------------------
    def _build(self):
        from .models import LanguageModel
        from .recurrent import GRU, LSTM, RNN

        graph = self.proto.graph
        if not self.layers:
            raise _Refused("the graph has no LSTM, GRU or RNN node")
        first = self.layers[0]
        L = len(self.layers)
        for k, layer in enumerate(self.layers[1:], 1):
            for key in ("op", "cell", "D", "H"):
                if layer[key] != first[key]:
                    raise _Refused(
                        f"recurrent layers 0 and {k} differ in {key} ({first[key]} and {layer[key]}); "
                        "rnnfast's stacks repeat one kind of layer"
                    )
        D, H, cell = first["D"], first["H"], first["cell"]
        final_stage = self.layers[-1]["stage"]
        sequence = None
        for value in graph.output:
            out = self.values.get(value.name)
            if isinstance(out, _Data) and out.kind == "final":
                if out.info["layers"] != (0, L):
                    raise _Refused(
                        f"graph output {value.name!r} holds the final states of layers "
                        f"{out.info['layers'][0]} to {out.info['layers'][1] - 1} of {L}, expected all"
                    )
                continue
            if isinstance(out, _Data) and out.kind == "seq":
                if sequence is not None:
                    raise _Refused(f"graph outputs {sequence[0]!r} and {value.name!r} are both sequences")
                if out.stage[: len(final_stage)] != final_stage:
                    raise _Refused(f"graph output {value.name!r} is not computed from the last recurrent layer")
                sequence = (value.name, out)
                continue
            raise _Refused(f"graph output {value.name!r} is neither the output sequence nor the final states")
        embedded = self.first_stage[-1] == ("embed",)
        x_name = self.first_stage[0][1]
        batch_first = self.time == (x_name, 1)
        if sequence is not None:
            name, out = sequence
            axes = [self._features(a) for a in out.axes]
            tail = out.stage[len(final_stage) :]
            expected_last = (("V",),) if tail else self._layer_features(L - 1)
            order = [(self.batch,), (self.time,)] if batch_first else [(self.time,), (self.batch,)]
            if len(axes) != 3 or axes[:2] != order or axes[2] != expected_last:
                raise _Refused(
                    f"graph output {name!r} does not hold the {'logits' if tail else 'outputs'} as "
                    f"{'(B, T, ...)' if batch_first else '(T, B, ...)'} like its input "
                    f"{x_name!r}, with {'the vocabulary' if tail else 'directions*hidden'} last"
                )
        else:
            tail = ()
        if embedded or tail:
            if not embedded:
                raise _Refused(
                    "a recurrent stack followed by a linear layer, without an embedding: rnnfast's "
                    "LanguageModel starts with one"
                )
            if sequence is None or not tail:
                raise _Refused(
                    "an embedding and recurrent layers without an output layer among the graph outputs: "
                    "rnnfast's LanguageModel ends with one"
                )
            if batch_first:
                raise _Refused(f"the token ids {x_name!r} are (B, T); rnnfast's LanguageModel reads (T, B)")
            if D != 1:
                raise _Refused("a bidirectional language model; rnnfast's LanguageModel runs forward")
        bias = any(layer["B"] is not None for layer in self.layers)
        source = {}
        for which in ("h", "c") if cell == "lstm" else ("h",):
            found = [layer["states"][which] for layer in self.layers]
            if all(f is None for f in found):
                continue
            names = {f[0] for f in found if f is not None}
            if len(names) != 1 or any(f is None or f[1:] != (k * D, (k + 1) * D) for k, f in enumerate(found)):
                raise _Refused(
                    f"initial {which} states: each layer must take its rows of one graph input "
                    "(num_layers*directions, B, H), or all start from zeros"
                )
            source[which] = names.pop()
            if source[which] == x_name:
                raise _Refused(f"initial {which} states are rows of the input sequence {x_name!r}")
        if len(source) == 2 and source["h"] == source["c"]:
            raise _Refused(f"initial h and c states are the same graph input {source['h']!r}")
        self.state_inputs = source  # which graph input holds the initial h (and c), for callers who feed them
        dtype = np.dtype(self.dtype).name
        if embedded:
            V, E = self.embedding.shape
            W_head = self.head
            b_head = self.biases[tail[1][1]] if len(tail) > 1 else None
            if W_head.shape != (V, H):
                raise _Refused(
                    f"the output layer maps {W_head.shape[1]} features to {W_head.shape[0]}, expected "
                    f"{H} to the vocabulary's {V}"
                )
            tie = E == H and np.array_equal(W_head, self.embedding)
            lm_cell = {"lstm": "lstm", "gru": "gru", "rnn_tanh": "rnn", "rnn_relu": "rnn_relu"}[cell]
            model = LanguageModel(V, E, H, num_layers=L, cell=lm_cell, tie_weights=tie, dtype=dtype)
            if first["I"] != E:
                raise _Refused(f"the first layer reads {first['I']} features, the embedding gives {E}")
            model.embedding._params["weight"][...] = self.embedding
            if not tie:
                model.head._params["weight"][...] = W_head
            model.head._params["bias"][...] = 0 if b_head is None else b_head
            rnn = model.rnn
        else:
            kwargs = dict(num_layers=L, bias=bias, batch_first=batch_first, bidirectional=D == 2, dtype=dtype)
            if cell == "lstm":
                rnn = model = LSTM(first["I"], H, **kwargs)
            elif cell == "gru":
                rnn = model = GRU(first["I"], H, **kwargs)
            else:
                rnn = model = RNN(first["I"], H, nonlinearity="relu" if cell == "rnn_relu" else "tanh", **kwargs)
        for k, layer in enumerate(self.layers):
            _set_layer_weights(rnn, k, layer["W"], layer["R"], layer["B"])
        return model.eval()


def _clip(index, n: int) -> int:
    index = int(index)
    if index < 0:
        index += n
    return max(0, min(n, index))


def _np_slice(reader, args, attrs, opset):
    data = args[0]
    if opset >= 10:
        starts, ends = args[1].reshape(-1), args[2].reshape(-1)
        axes = args[3].reshape(-1) if len(args) > 3 and args[3] is not None else np.arange(len(starts))
        steps = args[4].reshape(-1) if len(args) > 4 and args[4] is not None else np.ones(len(starts), np.int64)
    else:
        starts, ends = np.asarray(attrs["starts"]), np.asarray(attrs["ends"])
        axes, steps = np.asarray(attrs.get("axes", range(len(starts)))), np.ones(len(starts), np.int64)
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        n = data.shape[int(a)]
        s, e = int(s), int(e)
        index[int(a)] = slice(max(-n - 1, min(s, n)), max(-n - 1, min(e, n)), int(st))
    return data[tuple(index)]


def _np_axes(args, attrs, opset):
    if opset >= 13 and len(args) > 1 and args[1] is not None:
        return tuple(int(a) for a in args[1].reshape(-1))
    return tuple(int(a) for a in attrs.get("axes", []))


def _np_unsqueeze(reader, args, attrs, opset):
    out = args[0]
    axes = _np_axes(args, attrs, opset)
    for a in sorted(a % (out.ndim + len(axes)) for a in axes):
        out = np.expand_dims(out, a)
    return out


def _np_squeeze(reader, args, attrs, opset):
    axes = _np_axes(args, attrs, opset)
    return np.squeeze(args[0], axis=axes or None)


def _np_reshape(reader, args, attrs, opset):
    shape = [int(v) for v in args[1].reshape(-1)]
    if not attrs.get("allowzero", 0):
        shape = [args[0].shape[k] if v == 0 else v for k, v in enumerate(shape)]
    return args[0].reshape(shape)


def _np_cast(reader, args, attrs, opset):
    return args[0].astype(reader.onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))


def _np_shape(values) -> list:
    """A shape that a constant computation asks for, refused when it would allocate more than any shape
    computation needs."""
    shape = [int(v) for v in np.asarray(values).reshape(-1)]
    if any(n < 0 for n in shape) or int(np.prod(shape, dtype=np.float64)) > _MAX_CONSTANT:
        raise _Refused(f"a constant of shape {shape}: larger than any shape computation needs")
    return shape


def _np_constant_of_shape(reader, args, attrs, opset):
    value = _array(reader.onnx, attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
    return np.full(_np_shape(args[0]), value.reshape(-1)[0], value.dtype)


_MAX_CONSTANT = 2**24  # values in a constant that the graph computes (not an initializer) when it is read
_NUMPY_OPS = {
    "Identity": lambda r, a, at, o: a[0],
    "Transpose": lambda r, a, at, o: np.transpose(a[0], at.get("perm")),
    "Squeeze": _np_squeeze,
    "Unsqueeze": _np_unsqueeze,
    "Concat": lambda r, a, at, o: np.concatenate(a, axis=at.get("axis", 0)),
    "Slice": _np_slice,
    "Gather": lambda r, a, at, o: np.take(a[0], a[1].astype(np.int64), axis=at.get("axis", 0)),
    "Reshape": _np_reshape,
    "Cast": _np_cast,
    "Shape": lambda r, a, at, o: np.asarray(a[0].shape[at.get("start", 0) : at.get("end", None)], np.int64),
    "ConstantOfShape": _np_constant_of_shape,
    "Expand": lambda r, a, at, o: a[0] * np.ones(_np_shape(a[1]), a[0].dtype),
    "Add": lambda r, a, at, o: a[0] + a[1],
    "Sub": lambda r, a, at, o: a[0] - a[1],
    "Mul": lambda r, a, at, o: a[0] * a[1],
}
