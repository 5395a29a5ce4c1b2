// The double-precision reference of one recurrent layer, written out in plain loops: PyTorch's equations per
// element (LSTM gates i, f, g, o; GRU r, z, n with the reset gate applied to W_hn h + b_hn), forward and
// back-propagation through time, with PyTorch's packed-sequence lengths and the reverse direction. It shares
// nothing with the kernels but the Cell enum and the gate order, so a mistake in one is not repeated in the other.
//
// Used by the native test program (tests/native) and by the benchmark (bench/bench.cpp), which checks every kernel
// against it before timing it. Its own backward is checked against central differences of its forward
// (gradient_errors below) before it judges any kernel.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "rnnfast/cells.hpp"

namespace rnnfast_reference {

using rnnfast::Cell;
using Vec = std::vector<double>;

// One layer and its inputs. Lengths follow PyTorch's packed sequences (and rnnfast::SeqShape): at t >= lengths[b]
// the output is 0 and the state passes through unchanged; the reverse direction walks t = T-1 .. 0.
struct Layer {
  Cell cell = Cell::LSTM;
  int64_t T = 0, B = 0, I = 0, H = 0, G = 0;
  Vec W_ih, W_hh;                // (G*H, I), (G*H, H)
  Vec b_ih, b_hh;                // (G*H) each; empty: no bias
  Vec x;                         // (T, B, I)
  Vec h0, c0;                    // (B, H); c0 read for LSTM only
  std::vector<int64_t> lengths;  // (B), each in 1..T; empty: every sequence has length T
  bool reverse = false;

  bool valid(int64_t t, int64_t b) const { return lengths.empty() || t < lengths[b]; }
  int64_t time_at(int64_t step) const { return reverse ? T - 1 - step : step; }
  double bias_ih(int64_t r) const { return b_ih.empty() ? 0.0 : b_ih[r]; }
  double bias_hh(int64_t r) const { return b_hh.empty() ? 0.0 : b_hh[r]; }
};

struct Out {
  Vec y, hT, cT;  // (T, B, H), (B, H), (B, H)
};

// What backward needs per (t, b): activated gates (T, B, G*H); h_prev, c_prev, c_new and GRU's W_hn h + b_hn
// (T, B, H). Rows of positions past a sequence's length stay zero and are never read.
struct Tape {
  Vec gates, h_prev, c_prev, c_new, hn;
};

struct Grads {
  Vec x, h0, c0, W_ih, W_hh, b_ih, b_hh;  // same names as the Layer fields they differentiate
};

inline double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

inline double dot(const double* a, const double* b, int64_t n) {
  double s = 0.0;
  for (int64_t k = 0; k < n; ++k) s += a[k] * b[k];
  return s;
}

inline double max_abs(const Vec& v) {
  double m = 0.0;
  for (double e : v) m = std::max(m, std::abs(e));
  return m;
}

inline Out forward(const Layer& L, Tape* tape) {
  const int64_t T = L.T, B = L.B, I = L.I, H = L.H, GH = L.G * H;
  Out out{Vec(T * B * H, 0.0), L.h0, L.c0};
  Vec& h = out.hT;
  Vec& c = out.cT;
  if (tape) *tape = {Vec(T * B * GH), Vec(T * B * H), Vec(T * B * H), Vec(T * B * H), Vec(T * B * H)};
  Vec gi(GH), gh(GH), gates(GH), h_new(H);
  for (int64_t step = 0; step < T; ++step) {
    const int64_t t = L.time_at(step);
    for (int64_t b = 0; b < B; ++b) {
      if (!L.valid(t, b)) continue;  // y stays 0, h and c pass through
      const int64_t row = t * B + b;
      double* hb = &h[b * H];
      double* cb = &c[b * H];
      for (int64_t r = 0; r < GH; ++r) {
        gi[r] = L.bias_ih(r) + dot(&L.W_ih[r * I], &L.x[row * I], I);
        gh[r] = L.bias_hh(r) + dot(&L.W_hh[r * H], hb, H);
      }
      if (tape) {
        std::copy(hb, hb + H, &tape->h_prev[row * H]);
        std::copy(cb, cb + H, &tape->c_prev[row * H]);
        std::copy(&gh[2 * H], &gh[2 * H] + (L.cell == Cell::GRU ? H : 0), &tape->hn[row * H]);
      }
      for (int64_t j = 0; j < H; ++j) {
        switch (L.cell) {
          case Cell::RNN_TANH:
            gates[j] = h_new[j] = std::tanh(gi[j] + gh[j]);
            break;
          case Cell::RNN_RELU:
            gates[j] = h_new[j] = std::max(0.0, gi[j] + gh[j]);
            break;
          case Cell::LSTM: {
            const double i = sigmoid(gi[j] + gh[j]), f = sigmoid(gi[H + j] + gh[H + j]);
            const double g = std::tanh(gi[2 * H + j] + gh[2 * H + j]), o = sigmoid(gi[3 * H + j] + gh[3 * H + j]);
            gates[j] = i, gates[H + j] = f, gates[2 * H + j] = g, gates[3 * H + j] = o;
            cb[j] = f * cb[j] + i * g;
            h_new[j] = o * std::tanh(cb[j]);
            if (tape) tape->c_new[row * H + j] = cb[j];
            break;
          }
          case Cell::GRU: {
            const double r = sigmoid(gi[j] + gh[j]), z = sigmoid(gi[H + j] + gh[H + j]);
            const double n = std::tanh(gi[2 * H + j] + r * gh[2 * H + j]);
            gates[j] = r, gates[H + j] = z, gates[2 * H + j] = n;
            h_new[j] = (1.0 - z) * n + z * hb[j];
            break;
          }
        }
      }
      std::copy(h_new.begin(), h_new.end(), hb);
      std::copy(h_new.begin(), h_new.end(), &out.y[row * H]);
      if (tape) std::copy(gates.begin(), gates.end(), &tape->gates[row * GH]);
    }
  }
  return out;
}

// Gradients of loss = sum(dy * y) + sum(dhT * hT) + sum(dcT * cT), by back-propagation through the tape.
// dy (T, B, H), dhT and dcT (B, H); dcT is read for LSTM only.
inline Grads backward(const Layer& L, const Tape& tape, const Vec& dy, const Vec& dhT, const Vec& dcT) {
  const int64_t T = L.T, B = L.B, I = L.I, H = L.H, GH = L.G * H;
  Grads d{Vec(T * B * I, 0.0),
          dhT,
          L.cell == Cell::LSTM ? dcT : Vec(B * H, 0.0),
          Vec(GH * I, 0.0),
          Vec(GH * H, 0.0),
          Vec(GH, 0.0),
          Vec(GH, 0.0)};
  Vec& dh_next = d.h0;  // gradient reaching the state before the step being undone, filled in going backwards
  Vec& dc_next = d.c0;
  Vec dh(H), dgi(GH), dgh(GH), dh_prev(H);
  for (int64_t step = T - 1; step >= 0; --step) {
    const int64_t t = L.time_at(step);
    for (int64_t b = 0; b < B; ++b) {
      if (!L.valid(t, b)) continue;  // the state passed through: so does its gradient; dy there is ignored
      const int64_t row = t * B + b;
      const double* a = &tape.gates[row * GH];
      const double* hp = &tape.h_prev[row * H];
      for (int64_t j = 0; j < H; ++j) dh[j] = dy[row * H + j] + dh_next[b * H + j];
      std::fill(dh_prev.begin(), dh_prev.end(), 0.0);
      for (int64_t j = 0; j < H; ++j) {
        switch (L.cell) {
          case Cell::RNN_TANH:
            dgi[j] = dgh[j] = dh[j] * (1.0 - a[j] * a[j]);
            break;
          case Cell::RNN_RELU:
            dgi[j] = dgh[j] = a[j] > 0.0 ? dh[j] : 0.0;
            break;
          case Cell::LSTM: {
            const double i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
            const double tc = std::tanh(tape.c_new[row * H + j]);
            const double dc = dc_next[b * H + j] + dh[j] * o * (1.0 - tc * tc);
            dgi[j] = dc * g * i * (1.0 - i);
            dgi[H + j] = dc * tape.c_prev[row * H + j] * f * (1.0 - f);
            dgi[2 * H + j] = dc * i * (1.0 - g * g);
            dgi[3 * H + j] = dh[j] * tc * o * (1.0 - o);
            for (int k = 0; k < 4; ++k) dgh[k * H + j] = dgi[k * H + j];
            dc_next[b * H + j] = dc * f;
            break;
          }
          case Cell::GRU: {
            const double r = a[j], z = a[H + j], n = a[2 * H + j];
            const double dn = dh[j] * (1.0 - z) * (1.0 - n * n);
            dgi[2 * H + j] = dn;
            dgh[2 * H + j] = dn * r;
            dgi[j] = dgh[j] = dn * tape.hn[row * H + j] * r * (1.0 - r);
            dgi[H + j] = dgh[H + j] = dh[j] * (hp[j] - n) * z * (1.0 - z);
            dh_prev[j] = dh[j] * z;
            break;
          }
        }
      }
      for (int64_t r = 0; r < GH; ++r) {
        d.b_ih[r] += dgi[r];
        d.b_hh[r] += dgh[r];
        for (int64_t k = 0; k < I; ++k) {
          d.W_ih[r * I + k] += dgi[r] * L.x[row * I + k];
          d.x[row * I + k] += dgi[r] * L.W_ih[r * I + k];
        }
        for (int64_t k = 0; k < H; ++k) {
          d.W_hh[r * H + k] += dgh[r] * hp[k];
          dh_prev[k] += dgh[r] * L.W_hh[r * H + k];
        }
      }
      std::copy(dh_prev.begin(), dh_prev.end(), &dh_next[b * H]);
    }
  }
  return d;
}

// The scalar whose gradients backward() computes.
inline double loss(const Layer& L, const Vec& dy, const Vec& dhT, const Vec& dcT) {
  const Out out = forward(L, nullptr);
  double total = 0.0;
  for (size_t k = 0; k < dy.size(); ++k) total += dy[k] * out.y[k];
  for (size_t k = 0; k < dhT.size(); ++k) total += dhT[k] * out.hT[k];
  if (L.cell == Cell::LSTM)
    for (size_t k = 0; k < dcT.size(); ++k) total += dcT[k] * out.cT[k];
  return total;
}

struct GradientError {
  const char* tensor;  // "x", "h0", "c0", "W_ih", "W_hh", "b_ih", "b_hh"
  double relative;     // max |analytic - central difference| / max |analytic|
};

// The reference's backward is itself code that can be wrong: its gradient of every input against central
// differences of its forward (one entry per input the layer has; c0 for LSTM only, biases only when present).
// Meant for tiny layers: every element costs two forward passes.
inline std::vector<GradientError> gradient_errors(Layer L, const Vec& dy, const Vec& dhT, const Vec& dcT,
                                                  double eps = 1e-6) {
  Tape tape;
  forward(L, &tape);
  const Grads analytic = backward(L, tape, dy, dhT, dcT);
  Vec Layer::* inputs[] = {&Layer::x, &Layer::h0, &Layer::c0, &Layer::W_ih, &Layer::W_hh, &Layer::b_ih, &Layer::b_hh};
  const Vec Grads::* grads[] = {&Grads::x,    &Grads::h0,   &Grads::c0,  &Grads::W_ih,
                                &Grads::W_hh, &Grads::b_ih, &Grads::b_hh};
  const char* names[] = {"x", "h0", "c0", "W_ih", "W_hh", "b_ih", "b_hh"};
  std::vector<GradientError> errors;
  for (size_t f = 0; f < sizeof(names) / sizeof(names[0]); ++f) {
    if (inputs[f] == &Layer::c0 && L.cell != Cell::LSTM) continue;
    Vec& v = L.*inputs[f];
    if (v.empty()) continue;  // a layer without biases
    const Vec& g = analytic.*grads[f];
    double worst = 0.0;
    for (size_t k = 0; k < v.size(); ++k) {
      const double saved = v[k];
      v[k] = saved + eps;
      const double up = loss(L, dy, dhT, dcT);
      v[k] = saved - eps;
      const double down = loss(L, dy, dhT, dcT);
      v[k] = saved;
      const double e = std::abs((up - down) / (2 * eps) - g[k]);
      worst = std::max(worst, std::isnan(e) ? INFINITY : e);
    }
    errors.push_back({names[f], worst / std::max(max_abs(g), 1e-12)});
  }
  return errors;
}

}  // namespace rnnfast_reference
