// Binding for the fused generation loop (rnnfast/sample.hpp).
#include <cmath>

#include "registry.hpp"

namespace rnnfast::bind {
namespace {

template <class S>
py::array_t<int64_t> generate_impl(const TypedKernels<S>& k, const std::string& cell_name, const py::array& embedding,
                                   const py::list& layers, const py::array& head_W, const py::object& head_b,
                                   const py::array& prompt, int64_t steps, double temperature, int64_t top_k,
                                   double top_p, uint64_t seed, py::array& h, const py::object& c,
                                   const std::string& weight_dtype, const py::object& head_scale) {
  if (weight_dtype != "float32" && weight_dtype != "bfloat16" && weight_dtype != "int8")
    throw std::invalid_argument("weight_dtype: got '" + weight_dtype + "', expected 'float32', 'bfloat16' or 'int8'");
  const bool int8 = weight_dtype == "int8";
  if (int8 && !std::is_same_v<S, float>)
    throw std::invalid_argument("weight_dtype: int8 weights need a float32 model, got float64");
  const RhsStorage storage = weight_dtype == "bfloat16" ? RhsStorage::packed_bf16 : RhsStorage::packed;
  LanguageModelWeights<S> w;
  w.cell = cell_from_name(cell_name);
  const int G = num_gates(w.cell);
  if (embedding.ndim() != 2)
    throw std::invalid_argument("embedding: got shape " + shape_str(embedding) + ", expected (V, E)");
  w.vocab = embedding.shape(0);
  w.embed = embedding.shape(1);
  w.layers = static_cast<int64_t>(layers.size());
  if (w.layers < 1 || h.ndim() != 2) throw std::invalid_argument("layers: expected at least one layer and h (L, H)");
  w.hidden = h.shape(1);
  w.embedding = in_ptr<S>(embedding, "embedding", {w.vocab, w.embed});
  for (int64_t l = 0; l < w.layers; ++l) {
    const py::tuple t = py::cast<py::tuple>(layers[l]);
    if (t.size() != (int8 ? 6u : 4u))
      throw std::invalid_argument(int8 ? "layers: each entry must be (W_ih, W_hh, b_ih, b_hh, W_ih_scale, W_hh_scale)"
                                       : "layers: each entry must be (W_ih, W_hh, b_ih, b_hh)");
    const int64_t I = l == 0 ? w.embed : w.hidden, GH = G * w.hidden;
    LayerParams<S> p{w.cell,
                     I,
                     w.hidden,
                     nullptr,
                     nullptr,
                     optional_in_ptr<S>(t[2], "b_ih", {GH}),
                     optional_in_ptr<S>(t[3], "b_hh", {GH})};
    if (int8) {
      p.W_ih_int8 = int8_weights(py::cast<py::array>(t[0]), t[4], "W_ih", "W_ih_scale", GH, I);
      p.W_hh_int8 = int8_weights(py::cast<py::array>(t[1]), t[5], "W_hh", "W_hh_scale", GH, w.hidden);
    } else {
      p.W_ih = in_ptr<S>(py::cast<py::array>(t[0]), "W_ih", {GH, I});
      p.W_hh = in_ptr<S>(py::cast<py::array>(t[1]), "W_hh", {GH, w.hidden});
    }
    w.rnn.push_back(p);
  }
  if (int8)
    w.head_int8 = int8_weights(head_W, head_scale, "head_W", "head_scale", w.vocab, w.hidden);
  else
    w.head_W = in_ptr<S>(head_W, "head_W", {w.vocab, w.hidden});
  w.head_b = optional_in_ptr<S>(head_b, "head_b", {w.vocab});
  const int64_t P = prompt.size();
  if (P < 1) throw std::invalid_argument("prompt: got 0 tokens, expected at least 1");
  const int64_t* pp = in_ptr<int64_t>(prompt, "prompt", {P});
  for (int64_t i = 0; i < P; ++i)
    if (pp[i] < 0 || pp[i] >= w.vocab)
      throw std::invalid_argument("prompt: got id " + std::to_string(pp[i]) + ", expected 0.." +
                                  std::to_string(w.vocab - 1));
  if (steps < 0) throw std::invalid_argument("max_new_tokens: got " + std::to_string(steps) + ", expected >= 0");
  if (!(temperature >= 0) || !std::isfinite(temperature))
    throw std::invalid_argument("temperature: expected a finite number >= 0");
  if (!(top_p > 0 && top_p <= 1)) throw std::invalid_argument("top_p: expected a number in (0, 1]");
  if (top_k < 0) throw std::invalid_argument("top_k: expected >= 0 (0 = no limit)");
  S* hp = out_ptr<S>(h, "h", {w.layers, w.hidden});
  S* cp = has_cell_state(w.cell) ? optional_out_ptr<S>(c, "c", {w.layers, w.hidden}) : nullptr;
  if (has_cell_state(w.cell) && !cp) throw std::invalid_argument("c: required for lstm");
  py::array_t<int64_t> out(steps);
  int64_t* op = out.mutable_data();
  const SamplingOptions opt{temperature, top_k, top_p, seed};
  {
    py::gil_scoped_release release;
    k.generate(w, pp, P, steps, opt, hp, cp, op, storage);
  }
  return out;
}

const Register sample_bindings([](py::module_& m) {
  m.def(
      "generate",
      [](const std::string& cell, const py::array& embedding, const py::list& layers, const py::array& head_W,
         const py::object& head_b, const py::array& prompt, int64_t steps, double temperature, int64_t top_k,
         double top_p, uint64_t seed, py::array h, const py::object& c, const std::string& weight_dtype,
         const py::object& head_scale) {
        return with_kernels_for(embedding, [&](const auto& k) {
          return generate_impl(k, cell, embedding, layers, head_W, head_b, prompt, steps, temperature, top_k, top_p,
                               seed, h, c, weight_dtype, head_scale);
        });
      },
      py::arg("cell"), py::arg("embedding"), py::arg("layers"), py::arg("head_W"), py::arg("head_b"), py::arg("prompt"),
      py::arg("steps"), py::arg("temperature"), py::arg("top_k"), py::arg("top_p"), py::arg("seed"), py::arg("h"),
      py::arg("c"), py::arg("weight_dtype") = "float32", py::arg("head_scale") = py::none(),
      "Feed the prompt, then sample `steps` ids; h (L, H) and c (LSTM) hold the initial state and receive the "
      "final one. weight_dtype 'bfloat16' multiplies by the weight matrices rounded to bfloat16 (float32 models); "
      "'int8' takes int8 weight matrices: layers as (W_ih, W_hh, b_ih, b_hh, W_ih_scale, W_hh_scale), head_W "
      "with head_scale.");
});

}  // namespace
}  // namespace rnnfast::bind
