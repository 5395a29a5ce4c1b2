// Per-cell gate math: the pointwise part of one time step for a slice of hidden units, forward and backward.
//
// Gate layouts follow PyTorch: LSTM (i, f, g, o), GRU (r, z, n) with the reset gate applied to W_hn h + b_hn,
// vanilla RNN one gate. Pre-activations arrive in three parts: `pre` holds W_ih x and `bias` the folded biases,
// both in the global (G*H) layout of one row; `rec` holds h_prev W_hh^T for this thread's slice of units only, in
// (G*n) layout.
// Eigen array expressions give vectorised exp/tanh/logistic without -ffast-math.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace rnnfast {

enum class Cell : int { RNN_TANH = 0, RNN_RELU = 1, LSTM = 2, GRU = 3 };

inline int num_gates(Cell cell) {
  switch (cell) {
    case Cell::LSTM:
      return 4;
    case Cell::GRU:
      return 3;
    default:
      return 1;
  }
}

inline bool has_cell_state(Cell cell) { return cell == Cell::LSTM; }

inline Cell cell_from_name(const std::string& name) {
  if (name == "rnn_tanh") return Cell::RNN_TANH;
  if (name == "rnn_relu") return Cell::RNN_RELU;
  if (name == "lstm") return Cell::LSTM;
  if (name == "gru") return Cell::GRU;
  throw std::invalid_argument("cell: got '" + name + "', expected one of rnn_tanh, rnn_relu, lstm, gru");
}

// Pointwise math runs on fixed-size blocks of kBlock values held in aligned locals (a short last block is
// zero-padded), so every element takes the same vectorised code path wherever the data lives. Eigen would
// otherwise peel unaligned heads into scalar exp/tanh, making results depend on array addresses: a resumed run
// or a different thread split would then differ in the last bits.
constexpr int kBlock = 16;

template <class S>
using Block = Eigen::Array<S, kBlock, 1>;

template <class S>
struct BlockIO {
  int64_t k0, m;  // first element and count of this block
  // Full blocks move through Eigen maps (whole-vector loads and stores): a memcpy is lowered to 16-byte moves
  // under generic tuning, and reading those back as one 32-byte vector stalls on store forwarding.
  Block<S> in(const S* p) const {
    if (m == kBlock) return Eigen::Map<const Block<S>>(p + k0);
    Block<S> v = Block<S>::Zero();
    std::memcpy(v.data(), p + k0, sizeof(S) * m);
    return v;
  }
  // Only the short last block pays for a memcpy call.
  void out(S* p, const Block<S>& v) const {
    if (m == kBlock)
      Eigen::Map<Block<S>>(p + k0) = v;
    else
      std::memcpy(p + k0, v.data(), sizeof(S) * m);
  }
};

template <class S, class F>
inline void for_blocks(int64_t n, F&& f) {
  for (int64_t k0 = 0; k0 < n; k0 += kBlock) f(BlockIO<S>{k0, std::min<int64_t>(kBlock, n - k0)});
}

// Per-(t, b) values that backward needs, as offsets into one training workspace row block.
// act: activated gates (G*H) [RNN: the new h]; h_prev (H); LSTM: c_prev (H), tanh(c_new) (H); GRU: W_hn h + b_hn (H).
inline int64_t workspace_units(Cell cell) {
  switch (cell) {
    case Cell::LSTM:
      return 4 + 1 + 1 + 1;
    case Cell::GRU:
      return 3 + 1 + 1;
    default:
      return 1 + 1;
  }
}

// Pointers for one row (one batch element) of one step, all already offset to this thread's first unit j0.
template <class S>
struct RowForward {
  const S* pre;     // (G*H) row of input projections, offset by j0; gate g at pre[g*H + k]
  const S* bias;    // (G*H) folded biases in the same layout, added to pre first
  const S* rec;     // (G*n) this slice's recurrent product; gate g at rec[g*n + k]
  const S* b_hn;    // GRU: (n) hidden bias of the n gate, or nullptr
  const S* h_prev;  // (n)
  const S* c_prev;  // (n) LSTM only
  S* h_new;         // (n)
  S* c_new;         // (n) LSTM only
  S* act;           // training: (G*H) row of activated gates, offset by j0; nullptr in inference
  S* aux0;          // training: LSTM tanh(c_new) / GRU W_hn h + b_hn, (n); nullptr in inference
};

// The row functions are flattened: every load, store and gate lambda inside must inline into one loop, and GCC's
// own choice changed with unrelated code in the same module (an out-of-line `pre` lambda made a language-model
// forward 1.5x slower).
template <class S>
[[gnu::flatten]] inline void cell_forward_row(Cell cell, int64_t H, int64_t n, const RowForward<S>& r) {
  for_blocks<S>(n, [&](const BlockIO<S>& io) {
    auto pre = [&](int g) { return Block<S>(io.in(r.pre + g * H) + io.in(r.bias + g * H) + io.in(r.rec + g * n)); };
    switch (cell) {
      case Cell::RNN_TANH:
      case Cell::RNN_RELU: {
        const Block<S> h = cell == Cell::RNN_TANH ? Block<S>(pre(0).tanh()) : Block<S>(pre(0).cwiseMax(S(0)));
        io.out(r.h_new, h);
        if (r.act) io.out(r.act, h);
        break;
      }
      case Cell::LSTM: {
        const Block<S> i = pre(0).logistic(), f = pre(1).logistic(), g = pre(2).tanh(), o = pre(3).logistic();
        const Block<S> c = f * io.in(r.c_prev) + i * g;
        const Block<S> tc = c.tanh();
        io.out(r.c_new, c);
        io.out(r.h_new, o * tc);
        if (r.act) {
          io.out(r.act, i);
          io.out(r.act + H, f);
          io.out(r.act + 2 * H, g);
          io.out(r.act + 3 * H, o);
          io.out(r.aux0, tc);
        }
        break;
      }
      case Cell::GRU: {
        Block<S> hn = io.in(r.rec + 2 * n);
        if (r.b_hn) hn += io.in(r.b_hn);
        const Block<S> rg = pre(0).logistic(), z = pre(1).logistic();
        const Block<S> ng = (io.in(r.pre + 2 * H) + io.in(r.bias + 2 * H) + rg * hn).tanh();
        io.out(r.h_new, (S(1) - z) * ng + z * io.in(r.h_prev));
        if (r.act) {
          io.out(r.act, rg);
          io.out(r.act + H, z);
          io.out(r.act + 2 * H, ng);
          io.out(r.aux0, hn);
        }
        break;
      }
    }
  });
}

template <class S>
struct RowBackward {
  const S* dh;      // (n) gradient reaching h_new (from the output and from step t+1)
  const S* act;     // (G*H) activated gates, offset by j0
  const S* h_prev;  // (n)
  const S* c_prev;  // (n) LSTM
  const S* aux0;    // (n) LSTM tanh(c_new) / GRU W_hn h + b_hn
  S* dc;            // (n) LSTM: in: gradient reaching c_new from step t+1; out: gradient reaching c_prev
  S* dG;            // (G*H) gradient of the input pre-activations, offset by j0
  S* dGh;           // (G*H) GRU: gradient of the recurrent pre-activations (differs in the n gate); else == dG
  S* dh_direct;     // (n) out: the part of dh_prev that does not pass through W_hh (GRU: dh * z; else 0)
};

template <class S>
[[gnu::flatten]] inline void cell_backward_row(Cell cell, int64_t H, int64_t n, const RowBackward<S>& r) {
  for_blocks<S>(n, [&](const BlockIO<S>& io) {
    const Block<S> dh = io.in(r.dh);
    switch (cell) {
      case Cell::RNN_TANH:
      case Cell::RNN_RELU: {
        const Block<S> h = io.in(r.act);
        io.out(r.dG, cell == Cell::RNN_TANH ? Block<S>(dh * (S(1) - h * h)) : Block<S>((h > S(0)).select(dh, S(0))));
        io.out(r.dh_direct, Block<S>::Zero());
        break;
      }
      case Cell::LSTM: {
        const Block<S> i = io.in(r.act), f = io.in(r.act + H), g = io.in(r.act + 2 * H), o = io.in(r.act + 3 * H);
        const Block<S> tc = io.in(r.aux0);
        const Block<S> dc = io.in(r.dc) + dh * o * (S(1) - tc * tc);
        io.out(r.dG, dc * g * i * (S(1) - i));
        io.out(r.dG + H, dc * io.in(r.c_prev) * f * (S(1) - f));
        io.out(r.dG + 2 * H, dc * i * (S(1) - g * g));
        io.out(r.dG + 3 * H, dh * tc * o * (S(1) - o));
        io.out(r.dc, dc * f);
        io.out(r.dh_direct, Block<S>::Zero());
        break;
      }
      case Cell::GRU: {
        const Block<S> rg = io.in(r.act), z = io.in(r.act + H), ng = io.in(r.act + 2 * H), hn = io.in(r.aux0);
        const Block<S> dn = dh * (S(1) - z) * (S(1) - ng * ng);
        const Block<S> dz = dh * (io.in(r.h_prev) - ng) * z * (S(1) - z);
        const Block<S> dr = dn * hn * rg * (S(1) - rg);
        io.out(r.dG, dr);
        io.out(r.dG + H, dz);
        io.out(r.dG + 2 * H, dn);
        io.out(r.dGh, dr);
        io.out(r.dGh + H, dz);
        io.out(r.dGh + 2 * H, dn * rg);
        io.out(r.dh_direct, dh * z);
        break;
      }
    }
  });
}

}  // namespace rnnfast
