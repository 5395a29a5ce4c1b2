// Bindings for the dense layers, the fused loss and the optimizer updates.
#include "registry.hpp"

namespace rnnfast::bind {
namespace {

template <class S>
void linear_forward_impl(const TypedKernels<S>& k, const py::array& x, const py::array& W, const py::object& b,
                         py::array& y) {
  const int64_t N = dim(x, 0, "x", "(N, I)"), I = dim(x, 1, "x", "(N, I)"), O = dim(W, 0, "W", "(O, I)");
  const S* xp = in_ptr<S>(x, "x", {N, I});
  const S* Wp = in_ptr<S>(W, "W", {O, I});
  const S* bp = optional_in_ptr<S>(b, "b", {O});
  S* yp = out_ptr<S>(y, "y", {N, O});
  py::gil_scoped_release release;
  k.linear_forward(xp, N, I, Wp, O, bp, yp);
}

template <class S>
void linear_backward_impl(const TypedKernels<S>& k, const py::array& dy, const py::array& x, const py::array& W,
                          const py::object& dx, py::array& dW, const py::object& db) {
  const int64_t N = dim(x, 0, "x", "(N, I)"), I = dim(x, 1, "x", "(N, I)"), O = dim(W, 0, "W", "(O, I)");
  const S* dyp = in_ptr<S>(dy, "dy", {N, O});
  const S* xp = in_ptr<S>(x, "x", {N, I});
  const S* Wp = in_ptr<S>(W, "W", {O, I});
  S* dxp = optional_out_ptr<S>(dx, "dx", {N, I});
  S* dWp = out_ptr<S>(dW, "dW", {O, I});
  S* dbp = optional_out_ptr<S>(db, "db", {O});
  py::gil_scoped_release release;
  k.linear_backward(dyp, N, O, xp, I, Wp, dxp, dWp, dbp);
}

// ids in [0, V), or equal to *ignored when that is given.
const int64_t* checked_ids(const py::array& ids, const char* name, int64_t N, int64_t V, const int64_t* ignored) {
  const int64_t* p = in_ptr<int64_t>(ids, name, {N});
  for (int64_t n = 0; n < N; ++n)
    if ((p[n] < 0 || p[n] >= V) && !(ignored && p[n] == *ignored))
      throw std::invalid_argument(std::string(name) + ": got " + std::to_string(p[n]) + " at index " +
                                  std::to_string(n) + ", expected ids in 0.." + std::to_string(V - 1));
  return p;
}

template <class S>
void embedding_backward_impl(const TypedKernels<S>& k, py::array ids, py::array dy, py::array& dW) {
  const int64_t N = ids.size(), V = dim(dW, 0, "dW", "(V, E)"), E = dim(dW, 1, "dW", "(V, E)");
  const py::array flat_ids = ids.reshape({N});  // both kept alive while their pointers are in use
  const py::array flat_dy = dy.reshape({N, E});
  const int64_t* idp = checked_ids(flat_ids, "ids", N, V, nullptr);
  const S* dyp = in_ptr<S>(flat_dy, "dy", {N, E});
  S* dWp = out_ptr<S>(dW, "dW", {V, E});
  py::gil_scoped_release release;
  k.embedding_backward(idp, N, dyp, E, dWp, V);
}

template <class S>
py::tuple cross_entropy_impl(const TypedKernels<S>& k, const py::array& logits, const py::array& targets,
                             int64_t ignore_index, const py::object& dlogits, double grad_scale) {
  const int64_t N = dim(logits, 0, "logits", "(N, V)"), V = dim(logits, 1, "logits", "(N, V)");
  const S* zp = in_ptr<S>(logits, "logits", {N, V});
  const int64_t* tp = checked_ids(targets, "targets", N, V, &ignore_index);
  S* dp = optional_out_ptr<S>(dlogits, "dlogits", {N, V});
  LossResult r;
  {
    py::gil_scoped_release release;
    r = k.softmax_cross_entropy(zp, N, V, tp, ignore_index, dp, grad_scale);
  }
  return py::make_tuple(r.loss_sum, r.count, r.correct);
}

template <class S>
void sgd_impl(const TypedKernels<S>& k, py::array& p, const py::array& g, const py::object& buf, double lr,
              double momentum, double weight_decay, double dampening, bool nesterov, bool first_step,
              double grad_scale) {
  const int64_t n = p.size();
  S* pp = out_ptr<S>(p, "params", {n});
  const S* gp = in_ptr<S>(g, "grads", {n});
  S* bp = optional_out_ptr<S>(buf, "momentum_buffer", {n});
  if (momentum != 0 && !bp) throw std::invalid_argument("momentum_buffer: required when momentum != 0");
  py::gil_scoped_release release;
  k.sgd_step(pp, gp, bp, n, lr, momentum, weight_decay, dampening, nesterov, first_step, grad_scale);
}

template <class S>
void adam_impl(const TypedKernels<S>& k, py::array& p, const py::array& g, py::array& m, py::array& v, double lr,
               double beta1, double beta2, double eps, double weight_decay, bool decoupled, int64_t step,
               double grad_scale) {
  const int64_t n = p.size();
  S* pp = out_ptr<S>(p, "params", {n});
  const S* gp = in_ptr<S>(g, "grads", {n});
  S* mp = out_ptr<S>(m, "exp_avg", {n});
  S* vp = out_ptr<S>(v, "exp_avg_sq", {n});
  if (step < 1) throw std::invalid_argument("step: got " + std::to_string(step) + ", expected >= 1");
  py::gil_scoped_release release;
  k.adam_step(pp, gp, mp, vp, n, lr, beta1, beta2, eps, weight_decay, decoupled, step, grad_scale);
}

template <class S>
double sum_of_squares_impl(const TypedKernels<S>& k, const py::array& x) {
  const int64_t n = x.size();
  const S* xp = in_ptr<S>(x, "x", {n});
  py::gil_scoped_release release;
  return k.sum_of_squares(xp, n);
}

template <class S>
void scale_impl(const TypedKernels<S>& k, py::array& x, double factor) {
  const int64_t n = x.size();
  S* xp = out_ptr<S>(x, "x", {n});
  py::gil_scoped_release release;
  k.scale_in_place(xp, n, static_cast<S>(factor));
}

template <class S>
void clamp_impl(const TypedKernels<S>& k, py::array& x, double limit) {
  const int64_t n = x.size();
  S* xp = out_ptr<S>(x, "x", {n});
  py::gil_scoped_release release;
  k.clamp_in_place(xp, n, static_cast<S>(limit));
}

// impl(kernels, args...) with the kernels of the dtype of `first`, the array each kernel is typed by.
#define RNNFAST_CALL(first, impl, ...) with_kernels_for(first, [&](const auto& k) { return impl(k, __VA_ARGS__); })

const Register train_bindings([](py::module_& m) {
  m.def(
      "linear_forward",
      [](const py::array& x, const py::array& W, const py::object& b, py::array y) {
        RNNFAST_CALL(x, linear_forward_impl, x, W, b, y);
      },
      py::arg("x"), py::arg("W"), py::arg("b"), py::arg("y"), "y (N, O) = x (N, I) W^T + b");
  m.def(
      "linear_backward",
      [](const py::array& dy, const py::array& x, const py::array& W, const py::object& dx, py::array dW,
         const py::object& db) { RNNFAST_CALL(x, linear_backward_impl, dy, x, W, dx, dW, db); },
      py::arg("dy"), py::arg("x"), py::arg("W"), py::arg("dx"), py::arg("dW"), py::arg("db"),
      "dx = dy W (overwritten, optional); dW += dy^T x; db += sum(dy)");
  m.def(
      "embedding_backward",
      [](py::array ids, py::array dy, py::array dW) { RNNFAST_CALL(dW, embedding_backward_impl, ids, dy, dW); },
      py::arg("ids"), py::arg("dy"), py::arg("dW"), "dW[ids[n]] += dy[n]");
  m.def(
      "softmax_cross_entropy",
      [](const py::array& logits, const py::array& targets, int64_t ignore_index, const py::object& dlogits,
         double grad_scale) {
        return RNNFAST_CALL(logits, cross_entropy_impl, logits, targets, ignore_index, dlogits, grad_scale);
      },
      py::arg("logits"), py::arg("targets"), py::arg("ignore_index"), py::arg("dlogits"), py::arg("grad_scale"),
      "Returns (summed NLL, counted rows, correct argmax); writes grad_scale*(softmax-onehot) into dlogits "
      "(may alias logits).");
  m.def(
      "sgd_step",
      [](py::array p, const py::array& g, const py::object& buf, double lr, double momentum, double weight_decay,
         double dampening, bool nesterov, bool first_step, double grad_scale) {
        RNNFAST_CALL(p, sgd_impl, p, g, buf, lr, momentum, weight_decay, dampening, nesterov, first_step, grad_scale);
      },
      py::arg("params"), py::arg("grads"), py::arg("momentum_buffer"), py::arg("lr"), py::arg("momentum"),
      py::arg("weight_decay"), py::arg("dampening"), py::arg("nesterov"), py::arg("first_step"),
      py::arg("grad_scale") = 1.0);
  m.def(
      "adam_step",
      [](py::array p, const py::array& g, py::array m_, py::array v, double lr, double beta1, double beta2, double eps,
         double weight_decay, bool decoupled, int64_t step, double grad_scale) {
        RNNFAST_CALL(p, adam_impl, p, g, m_, v, lr, beta1, beta2, eps, weight_decay, decoupled, step, grad_scale);
      },
      py::arg("params"), py::arg("grads"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::arg("lr"), py::arg("beta1"),
      py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("decoupled"), py::arg("step"),
      py::arg("grad_scale") = 1.0);
  m.def("sum_of_squares", [](const py::array& x) { return RNNFAST_CALL(x, sum_of_squares_impl, x); }, py::arg("x"));
  m.def(
      "scale_in_place", [](py::array x, double f) { RNNFAST_CALL(x, scale_impl, x, f); }, py::arg("x"),
      py::arg("factor"));
  m.def(
      "clamp_in_place", [](py::array x, double lim) { RNNFAST_CALL(x, clamp_impl, x, lim); }, py::arg("x"),
      py::arg("limit"));
});

}  // namespace
}  // namespace rnnfast::bind
