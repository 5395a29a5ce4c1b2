// Bindings for the linear-chain CRF: negative log-likelihood with its gradient, and Viterbi decoding.
#include "registry.hpp"

namespace rnnfast::bind {
namespace {

template <class S>
CrfScores<S> scores(const py::array& emissions, const py::object& lengths, const py::array& start, const py::array& end,
                    const py::array& trans) {
  if (emissions.ndim() != 3 || emissions.shape(0) < 1 || emissions.shape(1) < 1 || emissions.shape(2) < 1)
    throw std::invalid_argument("emissions: got shape " + shape_str(emissions) + ", expected non-empty (T, B, C)");
  const int64_t T = emissions.shape(0), B = emissions.shape(1), C = emissions.shape(2);
  return {in_ptr<S>(emissions, "emissions", {T, B, C}),
          T,
          B,
          C,
          checked_lengths(lengths, B, T),
          in_ptr<S>(start, "start", {C}),
          in_ptr<S>(end, "end", {C}),
          in_ptr<S>(trans, "trans", {C, C})};
}

template <class S>
py::array_t<double> nll_impl(const TypedKernels<S>& k, const py::array& emissions, const py::array& tags,
                             const py::object& lengths, const py::array& start, const py::array& end,
                             const py::array& trans, const py::object& demissions, const py::object& dstart,
                             const py::object& dend, const py::object& dtrans, double grad_scale) {
  const CrfScores<S> s = scores<S>(emissions, lengths, start, end, trans);
  const int64_t* tp = in_ptr<int64_t>(tags, "tags", {s.T, s.B});
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = 0; t < s.length(b); ++t)
      if (tp[t * s.B + b] < 0 || tp[t * s.B + b] >= s.C)
        throw std::invalid_argument("tags: got " + std::to_string(tp[t * s.B + b]) + " at (" + std::to_string(t) +
                                    ", " + std::to_string(b) + "), expected tag ids in 0.." + std::to_string(s.C - 1));
  S* dp = optional_out_ptr<S>(demissions, "demissions", {s.T, s.B, s.C});
  S* dsp = optional_out_ptr<S>(dstart, "dstart", {s.C});
  S* dep = optional_out_ptr<S>(dend, "dend", {s.C});
  S* dtp = optional_out_ptr<S>(dtrans, "dtrans", {s.C, s.C});
  if (!dp != !dsp || !dp != !dep || !dp != !dtp)
    throw std::invalid_argument("demissions, dstart, dend, dtrans: expected all four or none");
  py::array_t<double> nll(s.B);
  double* nll_out = nll.mutable_data();
  {
    py::gil_scoped_release release;
    k.crf_nll(s, tp, nll_out, dp, dsp, dep, dtp, grad_scale);
  }
  return nll;
}

template <class S>
py::tuple viterbi_impl(const TypedKernels<S>& k, const py::array& emissions, const py::object& lengths,
                       const py::array& start, const py::array& end, const py::array& trans) {
  const CrfScores<S> s = scores<S>(emissions, lengths, start, end, trans);
  py::array_t<int64_t> tags({s.T, s.B});
  py::array_t<double> best(s.B);
  int64_t* tp = tags.mutable_data();
  double* bp = best.mutable_data();
  {
    py::gil_scoped_release release;
    k.crf_viterbi(s, tp, bp);
  }
  return py::make_tuple(tags, best);
}

const Register crf_bindings([](py::module_& m) {
  m.def(
      "crf_nll",
      [](const py::array& emissions, const py::array& tags, const py::object& lengths, const py::array& start,
         const py::array& end, const py::array& trans, const py::object& demissions, const py::object& dstart,
         const py::object& dend, const py::object& dtrans, double grad_scale) {
        return with_kernels_for(emissions, [&](const auto& k) {
          return nll_impl(k, emissions, tags, lengths, start, end, trans, demissions, dstart, dend, dtrans, grad_scale);
        });
      },
      py::arg("emissions"), py::arg("tags"), py::arg("lengths"), py::arg("start"), py::arg("end"), py::arg("trans"),
      py::arg("demissions"), py::arg("dstart"), py::arg("dend"), py::arg("dtrans"), py::arg("grad_scale"),
      "Per-sequence negative log-likelihood (B,) of tags (T, B) under emissions (T, B, C); with the gradient "
      "buffers, demissions is overwritten with grad_scale * d(sum nll)/d(emissions) and the parameter gradients "
      "accumulate.");
  m.def(
      "crf_viterbi",
      [](const py::array& emissions, const py::object& lengths, const py::array& start, const py::array& end,
         const py::array& trans) {
        return with_kernels_for(emissions,
                                [&](const auto& k) { return viterbi_impl(k, emissions, lengths, start, end, trans); });
      },
      py::arg("emissions"), py::arg("lengths"), py::arg("start"), py::arg("end"), py::arg("trans"),
      "Best tags (T, B) (-1 at padded positions) and their scores (B,).");
});

}  // namespace
}  // namespace rnnfast::bind
