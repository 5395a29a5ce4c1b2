// The native test program of rnnfast's C++ core: every kernel against a double-precision reference written out in
// plain loops (llm.c's test_gpt2.c, celerite2's C++ tests), built once per instruction set and run by ctest.
//
//   rnnfast_test_<isa> [-v] [SECTION...]     all sections, or the named ones; -v prints every comparison's error;
//                                            --help lists the sections
//
// Exit status: 0 when every check passed, 1 when any failed, 2 on a usage error, 77 (skipped) when the CPU cannot
// run this build's instruction set (isa_guard.cpp). Threads: RNNFAST_TEST_THREADS, default 2; sections that
// check thread-count independence set their own.
#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "check.hpp"
#include "rnnfast/amx.hpp"
#include "rnnfast/build_info.hpp"
#include "rnnfast/gemm.hpp"
#include "rnnfast/parallel.hpp"

#ifndef RNNFAST_TEST_ISA
#define RNNFAST_TEST_ISA "unknown"
#endif

namespace rnnfast_test {
void test_reference();
void test_sequence();
void test_generate();
void test_bf16_rounding();
void test_gemm();
void test_fixed_rhs();
void test_bf16_products();
void test_loss();
void test_optim();
void test_crf();
void test_dense();
void test_parallel();
void test_int8();
}  // namespace rnnfast_test

namespace {

struct Section {
  const char* name;
  const char* what;
  void (*run)();
  bool on_request = false;  // run only when named
};

// Deliberate errors that a sanitizer build must report (.ci/native checks that it does): a run that reports
// nothing proves something only if these do not pass silently.
void asan_canary() {
  std::vector<float> v(16, 0.0f);
  volatile size_t past_end = v.size();  // volatile: the compiler cannot see the overflow coming
  v.data()[past_end] = 1.0f;            // one past the end of the heap block
  std::printf("  asan_canary: the heap overflow went unreported\n");
}

void ubsan_canary() {
  volatile int big = std::numeric_limits<int>::max();
  const int sum = big + 1;  // signed overflow
  std::printf("  ubsan_canary: the signed overflow went unreported (%d)\n", sum);
}

const Section kSections[] = {
    {"reference", "the reference's BPTT against central differences of its forward", rnnfast_test::test_reference},
    {"sequence", "sequence_forward / sequence_backward of every cell, float32 and float64",
     rnnfast_test::test_sequence},
    {"generate", "generate(): greedy against the reference, sampling, bfloat16 weights", rnnfast_test::test_generate},
    {"bf16_rounding", "float -> bfloat16 rounding", rnnfast_test::test_bf16_rounding},
    {"gemm", "sgemm and matmul at every blocking edge, transposes, beta, strides", rnnfast_test::test_gemm},
    {"fixed_rhs", "FixedRhs: in place, packed and bfloat16-packed operands", rnnfast_test::test_fixed_rhs},
    {"bf16_products", "bfloat16 products on AMX tiles or AVX512-BF16", rnnfast_test::test_bf16_products},
    {"loss", "fused softmax cross-entropy", rnnfast_test::test_loss},
    {"optim", "SGD, Adam, AdamW updates and the norm helpers", rnnfast_test::test_optim},
    {"crf", "CRF negative log-likelihood, gradients and Viterbi against enumeration", rnnfast_test::test_crf},
    {"dense", "linear layer and embedding gradient", rnnfast_test::test_dense},
    {"parallel", "the step barrier, spinning and sleeping; fewer threads under load", rnnfast_test::test_parallel},
    {"int8", "int8 weight products of every unit against exact integers", rnnfast_test::test_int8},
    {"asan_canary", "a heap overflow, for checking a sanitizer build (only when named)", asan_canary, true},
    {"ubsan_canary", "a signed overflow, for checking a sanitizer build (only when named)", ubsan_canary, true},
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> selected;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-v") {
      rnnfast_test::stats().verbose = true;
    } else if (arg == "-h" || arg == "--help") {
      std::printf("usage: %s [-v] [SECTION...]\nsections:\n", argv[0]);
      for (const Section& s : kSections) std::printf("  %-14s %s\n", s.name, s.what);
      return 0;
    } else {
      bool known = false;
      for (const Section& s : kSections) known = known || arg == s.name;
      if (!known) {
        std::fprintf(stderr, "%s: unknown section '%s' (see --help)\n", argv[0], arg.c_str());
        return 2;
      }
      selected.push_back(arg);
    }
  }
  int threads = 2;
  if (const char* env = std::getenv("RNNFAST_TEST_THREADS")) threads = std::max(1, std::atoi(env));
  rnnfast::set_num_threads(threads);
  const char* bf16_unit = rnnfast::amx::unit_name();
  std::printf(
      "# rnnfast native tests: isa %s (MR=%d NR=%d), Eigen SIMD %s, %s, OpenMP %s, %d thread(s), "
      "bfloat16 products: %s\n",
      RNNFAST_TEST_ISA, rnnfast::gemm::MR, rnnfast::gemm::NR, Eigen::SimdInstructionSetsInUse(),
      rnnfast::compiler_name().c_str(), rnnfast::openmp_enabled() ? "on" : "off", rnnfast::max_threads(),
      bf16_unit ? bf16_unit : "none");
  std::fflush(stdout);

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  rnnfast_test::Stats& stats = rnnfast_test::stats();
  for (const Section& s : kSections) {
    const bool named = std::find(selected.begin(), selected.end(), s.name) != selected.end();
    if (selected.empty() ? s.on_request : !named) continue;
    const int64_t checks = stats.checks, failures = stats.failures;
    const auto t0 = Clock::now();
    {
      rnnfast_test::Scope scope(s.name);
      s.run();
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const int64_t n = stats.checks - checks, failed = stats.failures - failures;
    std::printf("%s %-14s %6lld checks %s  %6.2f s  %s\n", failed ? "FAIL" : "ok  ", s.name, static_cast<long long>(n),
                failed ? rnnfast_test::format("(%lld failed)", static_cast<long long>(failed)).c_str() : "", seconds,
                s.what);
    std::fflush(stdout);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("# %lld checks, %lld failed, %.1f s; closest passing comparison: error / tolerance = %.2g (%s)\n",
              static_cast<long long>(stats.checks), static_cast<long long>(stats.failures), seconds, stats.worst_ratio,
              stats.worst_what.empty() ? "-" : stats.worst_what.c_str());
  return stats.failures ? 1 : 0;
}
