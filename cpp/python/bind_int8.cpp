// Bindings of the int8 products (rnnfast/int8.hpp): the int8 linear layer and the pieces tests check exactly.
#include "registry.hpp"

namespace rnnfast::bind {
namespace {

void linear_forward_int8(const py::array& x, const py::array& W, const py::array& W_scale, const py::object& b,
                         py::array& y) {
  const int64_t N = dim(x, 0, "x", "(N, I)"), I = dim(x, 1, "x", "(N, I)"), O = dim(W, 0, "W", "(O, I)");
  const float* xp = in_ptr<float>(x, "x", {N, I});
  const int8::Weights Wq = int8_weights(W, W_scale, "W", "W_scale", O, I);
  const float* bp = optional_in_ptr<float>(b, "b", {O});
  float* yp = out_ptr<float>(y, "y", {N, O});
  const KernelTable& t = float_table();
  py::gil_scoped_release release;
  t.int8_linear_forward(xp, N, I, Wq, O, bp, yp);
}

py::array_t<int32_t> exact_products(const py::array& q, const py::array& w) {
  const int64_t m = dim(q, 0, "q", "(m, K)"), K = dim(q, 1, "q", "(m, K)"), n = dim(w, 0, "w", "(n, K)");
  const int8_t* qp = in_ptr<int8_t>(q, "q", {m, K});
  const int8_t* wp = in_ptr<int8_t>(w, "w", {n, K});
  if (K > int8::kMaxDepth) throw std::invalid_argument("q: got K = " + std::to_string(K) + ", too deep for int32");
  for (int64_t i = 0; i < m * K; ++i)
    if (qp[i] < -int8::kZeroPoint || qp[i] >= int8::kZeroPoint)
      throw std::invalid_argument("q: got " + std::to_string(qp[i]) + ", expected activations in [-64, 63]");
  py::array_t<int32_t> out({m, n});
  int32_t* op = out.mutable_data();
  const KernelTable& t = float_table();
  py::gil_scoped_release release;
  t.int8_exact_products(qp, m, K, wp, n, op);
  return out;
}

py::tuple quantize_activations(const py::array& x) {
  const int64_t m = dim(x, 0, "x", "(m, K)"), K = dim(x, 1, "x", "(m, K)");
  const float* xp = in_ptr<float>(x, "x", {m, K});
  py::array_t<int8_t> q({m, K});
  py::array_t<float> scale(m);
  int8_t* qp = q.mutable_data();
  float* sp = scale.mutable_data();
  float_table().int8_quantize_activations(xp, m, K, qp, sp);
  return py::make_tuple(q, scale);
}

const Register int8_bindings([](py::module_& m) {
  m.def("linear_forward_int8", &linear_forward_int8, py::arg("x"), py::arg("W"), py::arg("W_scale"), py::arg("b"),
        py::arg("y"), "y (N, O) = x (N, I) float32 times int8 W (O, I) with per-row W_scale, plus b");
  m.def("int8_exact_products", &exact_products, py::arg("q"), py::arg("w"),
        "int32 (m, n) = q (m, K) w (n, K)^T with the int8 unit in use; q holds quantized activations in [-64, 63]");
  m.def("int8_quantize_activations", &quantize_activations, py::arg("x"),
        "The run-time activation quantization: (q int8 (m, K), scale float32 (m)) with x ~ q * scale per row");
});

}  // namespace
}  // namespace rnnfast::bind
