// Bindings for one recurrent layer direction over a sequence (rnnfast/sequence.hpp).
#include "registry.hpp"

namespace rnnfast::bind {
namespace {

struct LayerArgs {
  Cell cell;
  int64_t T, B, I, H, G;
};

LayerArgs layer_args(const std::string& cell_name, const py::array& x, const py::array& W_hh) {
  LayerArgs a;
  a.cell = cell_from_name(cell_name);
  a.G = num_gates(a.cell);
  if (x.ndim() != 3) throw std::invalid_argument("x: got shape " + shape_str(x) + ", expected (T, B, I)");
  if (W_hh.ndim() != 2 || W_hh.shape(0) != a.G * W_hh.shape(1))
    throw std::invalid_argument("W_hh: got shape " + shape_str(W_hh) + ", expected (G*H, H)");
  a.T = x.shape(0);
  a.B = x.shape(1);
  a.I = x.shape(2);
  a.H = W_hh.shape(1);
  if (a.T < 1 || a.B < 1) throw std::invalid_argument("x: got shape " + shape_str(x) + ", expected T >= 1, B >= 1");
  return a;
}

// With scales, W_ih and W_hh are int8 weights (float32 inference only).
template <class S>
LayerParams<S> layer_params(const LayerArgs& a, const py::array& W_ih, const py::array& W_hh, const py::object& b_ih,
                            const py::object& b_hh, const py::object& W_ih_scale = py::none(),
                            const py::object& W_hh_scale = py::none()) {
  const int64_t GH = a.G * a.H;
  LayerParams<S> p{a.cell,
                   a.I,
                   a.H,
                   nullptr,
                   nullptr,
                   optional_in_ptr<S>(b_ih, "b_ih", {GH}),
                   optional_in_ptr<S>(b_hh, "b_hh", {GH})};
  if (W_ih_scale.is_none() && W_hh_scale.is_none()) {
    p.W_ih = in_ptr<S>(W_ih, "W_ih", {GH, a.I});
    p.W_hh = in_ptr<S>(W_hh, "W_hh", {GH, a.H});
  } else if constexpr (std::is_same_v<S, float>) {
    p.W_ih_int8 = int8_weights(W_ih, W_ih_scale, "W_ih", "W_ih_scale", GH, a.I);
    p.W_hh_int8 = int8_weights(W_hh, W_hh_scale, "W_hh", "W_hh_scale", GH, a.H);
  } else {
    throw std::invalid_argument("x: got float64, int8 weights serve float32 models only");
  }
  return p;
}

int64_t checked_column(py::array& y, const LayerArgs& a, int64_t column) {
  if (y.ndim() != 3 || y.shape(0) != a.T || y.shape(1) != a.B || column < 0 || column + a.H > y.shape(2))
    throw std::invalid_argument("y: got shape " + shape_str(y) + " with column " + std::to_string(column) +
                                ", expected (T, B, >= column + H)");
  return y.shape(2);
}

template <class S>
bool reusable(const py::object& spare, int64_t size) {
  if (spare.is_none() || !py::isinstance<py::array>(spare)) return false;
  const py::array a = py::cast<py::array>(spare);
  return a.dtype().is(py::dtype::of<S>()) && a.ndim() == 1 && a.shape(0) == size && a.writeable() &&
         (a.flags() & py::array::c_style) && a.owndata();
}

template <class S>
py::tuple forward_impl(const TypedKernels<S>& k, const LayerArgs& a, const py::array& x, const py::array& h0,
                       const py::object& c0, const py::array& W_ih, const py::array& W_hh, const py::object& b_ih,
                       const py::object& b_hh, const py::object& lengths, bool reverse, bool training, py::array& y,
                       int64_t column, const py::object& spare_workspace, const py::object& W_ih_scale,
                       const py::object& W_hh_scale) {
  const LayerParams<S> p = layer_params<S>(a, W_ih, W_hh, b_ih, b_hh, W_ih_scale, W_hh_scale);
  if (p.W_ih_int8 && training)
    throw std::invalid_argument("training: got True, int8 weights serve inference only (no backward)");
  const bool lstm = has_cell_state(a.cell);
  const S* x_p = in_ptr<S>(x, "x", {a.T, a.B, a.I});
  const S* h0_p = in_ptr<S>(h0, "h0", {a.B, a.H});
  const S* c0_p = lstm ? in_ptr<S>(py::cast<py::array>(c0), "c0", {a.B, a.H}) : nullptr;
  const int64_t ldy = checked_column(y, a, column);
  S* y_p = out_ptr<S>(y, "y", {a.T, a.B, ldy}) + column;
  const SeqShape shape{a.T, a.B, checked_lengths(lengths, a.B, a.T), reverse};
  py::array_t<S> hT({a.B, a.H});
  py::object cT = py::none();
  S* cT_p = nullptr;
  if (lstm) {
    py::array_t<S> c({a.B, a.H});
    cT_p = c.mutable_data();
    cT = c;
  }
  py::object workspace = py::none();
  S* ws_p = nullptr;
  if (training) {
    // A workspace is tens of megabytes; a fresh one arrives as new pages that the kernel must clear on first touch
    // (thousands of page faults per call), so the caller hands back the previous call's when it is done with it.
    const int64_t size = workspace_size(a.cell, a.T, a.B, a.H);
    py::array_t<S> w =
        reusable<S>(spare_workspace, size) ? py::cast<py::array_t<S>>(spare_workspace) : py::array_t<S>(size);
    ws_p = w.mutable_data();
    workspace = w;
  }
  S* hT_p = hT.mutable_data();
  {
    py::gil_scoped_release release;
    k.sequence_forward(p, shape, x_p, h0_p, c0_p, y_p, ldy, hT_p, cT_p, ws_p);
  }
  return py::make_tuple(hT, cT, workspace);
}

template <class S>
py::tuple backward_impl(const TypedKernels<S>& k, const LayerArgs& a, const py::array& x, const py::array& workspace,
                        const py::array& W_ih, const py::array& W_hh, const py::object& b_ih, const py::object& b_hh,
                        const py::object& lengths, bool reverse, const py::array& dy, int64_t column,
                        const py::object& dhT, const py::object& dcT, py::array& dx, bool accumulate_dx,
                        py::array& dW_ih, py::array& dW_hh, const py::object& db_ih, const py::object& db_hh) {
  const LayerParams<S> p = layer_params<S>(a, W_ih, W_hh, b_ih, b_hh);
  const bool lstm = has_cell_state(a.cell);
  const S* x_p = in_ptr<S>(x, "x", {a.T, a.B, a.I});
  const S* ws_p = in_ptr<S>(workspace, "workspace", {workspace_size(a.cell, a.T, a.B, a.H)});
  py::array dy_arr = dy;
  const int64_t ldy = checked_column(dy_arr, a, column);
  const S* dy_p = in_ptr<S>(dy, "dy", {a.T, a.B, ldy}) + column;
  const S* dhT_p = optional_in_ptr<S>(dhT, "dhT", {a.B, a.H});
  const S* dcT_p = lstm ? optional_in_ptr<S>(dcT, "dcT", {a.B, a.H}) : nullptr;
  S* dx_p = out_ptr<S>(dx, "dx", {a.T, a.B, a.I});
  const int64_t GH = a.G * a.H;
  LayerGrads<S> g{out_ptr<S>(dW_ih, "dW_ih", {GH, a.I}), out_ptr<S>(dW_hh, "dW_hh", {GH, a.H}),
                  optional_out_ptr<S>(db_ih, "db_ih", {GH}), optional_out_ptr<S>(db_hh, "db_hh", {GH})};
  if ((g.db_ih == nullptr) != (p.b_ih == nullptr) || (g.db_hh == nullptr) != (p.b_hh == nullptr))
    throw std::invalid_argument("db_ih, db_hh: expected bias gradients exactly when the layer has biases");
  const SeqShape shape{a.T, a.B, checked_lengths(lengths, a.B, a.T), reverse};
  py::array_t<S> dh0({a.B, a.H});
  py::object dc0 = py::none();
  S* dc0_p = nullptr;
  if (lstm) {
    py::array_t<S> c({a.B, a.H});
    dc0_p = c.mutable_data();
    dc0 = c;
  }
  S* dh0_p = dh0.mutable_data();
  {
    py::gil_scoped_release release;
    k.sequence_backward(p, shape, x_p, ws_p, dy_p, ldy, dhT_p, dcT_p, dx_p, accumulate_dx, dh0_p, dc0_p, g);
  }
  return py::make_tuple(dh0, dc0);
}

py::tuple sequence_forward_py(const std::string& cell, const py::array& x, const py::array& h0, const py::object& c0,
                              const py::array& W_ih, const py::array& W_hh, const py::object& b_ih,
                              const py::object& b_hh, const py::object& lengths, bool reverse, bool training,
                              py::array y, int64_t column, const py::object& spare_workspace,
                              const py::object& W_ih_scale, const py::object& W_hh_scale) {
  const LayerArgs a = layer_args(cell, x, W_hh);
  if (has_cell_state(a.cell) && c0.is_none()) throw std::invalid_argument("c0: required for lstm");
  return with_kernels_for(x, [&](const auto& k) {
    return forward_impl(k, a, x, h0, c0, W_ih, W_hh, b_ih, b_hh, lengths, reverse, training, y, column, spare_workspace,
                        W_ih_scale, W_hh_scale);
  });
}

py::tuple sequence_backward_py(const std::string& cell, const py::array& x, const py::array& workspace,
                               const py::array& W_ih, const py::array& W_hh, const py::object& b_ih,
                               const py::object& b_hh, const py::object& lengths, bool reverse, const py::array& dy,
                               int64_t column, const py::object& dhT, const py::object& dcT, py::array dx,
                               bool accumulate_dx, py::array dW_ih, py::array dW_hh, const py::object& db_ih,
                               const py::object& db_hh) {
  const LayerArgs a = layer_args(cell, x, W_hh);
  return with_kernels_for(x, [&](const auto& k) {
    return backward_impl(k, a, x, workspace, W_ih, W_hh, b_ih, b_hh, lengths, reverse, dy, column, dhT, dcT, dx,
                         accumulate_dx, dW_ih, dW_hh, db_ih, db_hh);
  });
}

const Register rnn_bindings([](py::module_& m) {
  m.def("sequence_forward", &sequence_forward_py, py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"),
        py::arg("W_ih"), py::arg("W_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("lengths"), py::arg("reverse"),
        py::arg("training"), py::arg("y"), py::arg("column"), py::arg("spare_workspace") = py::none(),
        py::arg("W_ih_scale") = py::none(), py::arg("W_hh_scale") = py::none(),
        "One layer direction over (T, B, I); writes y[..., column:column+H] and returns (hT, cT, workspace). "
        "In training, spare_workspace (a workspace the caller no longer needs) is reused when its size fits. "
        "With W_ih_scale and W_hh_scale, W_ih and W_hh are int8 weights (float32 inference).");
  m.def(
      "workspace_size",
      [](const std::string& cell, int64_t T, int64_t B, int64_t H) {
        return workspace_size(cell_from_name(cell), T, B, H);
      },
      py::arg("cell"), py::arg("T"), py::arg("B"), py::arg("H"), "Elements of a training forward's workspace.");
  m.def("sequence_backward", &sequence_backward_py, py::arg("cell"), py::arg("x"), py::arg("workspace"),
        py::arg("W_ih"), py::arg("W_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("lengths"), py::arg("reverse"),
        py::arg("dy"), py::arg("column"), py::arg("dhT"), py::arg("dcT"), py::arg("dx"), py::arg("accumulate_dx"),
        py::arg("dW_ih"), py::arg("dW_hh"), py::arg("db_ih"), py::arg("db_hh"),
        "BPTT for one layer direction; writes (or adds to) dx, accumulates parameter gradients, "
        "returns (dh0, dc0).");
});

}  // namespace
}  // namespace rnnfast::bind
