// One instruction set's kernel table and the library's only exported symbol (see kernel_table.hpp).
#include <Eigen/Core>
#include <string>

#include "kernel_parts.hpp"
#include "rnnfast/amx.hpp"
#include "rnnfast/build_info.hpp"
#include "rnnfast/parallel.hpp"

namespace rnnfast::RNNFAST_KERNEL_NS {
namespace {

template <class S>
void fill(TypedKernels<S>& k) {
  fill_sequence(k);
  fill_dense(k);
  fill_crf(k);
  fill_sample(k);
}

KernelTable make_table() {
  static const std::string openmp = openmp_runtime();
  static const std::string eigen_simd = Eigen::SimdInstructionSetsInUse();
  static const std::string compiler = compiler_name();
  KernelTable t{};
  t.abi = RNNFAST_KERNEL_ABI;
  t.size = static_cast<int64_t>(sizeof(KernelTable));
  t.isa = RNNFAST_ISA;
  fill(t.f32);
#if RNNFAST_KERNEL_F64
  fill(t.f64);
  t.has_f64 = true;
#endif
  t.set_num_threads = [](int n) { rnnfast::set_num_threads(n); };
  t.max_threads = [] { return rnnfast::max_threads(); };
  t.threads_in_use = [] { return rnnfast::contention::limited_threads(rnnfast::max_threads()); };
  t.set_matmul_bfloat16 = [](bool on) {
    matmul_precision_setting().store(static_cast<int>(on ? MatmulPrecision::bfloat16 : MatmulPrecision::float32));
  };
  t.matmul_bfloat16 = [] { return matmul_precision_setting().load() == static_cast<int>(MatmulPrecision::bfloat16); };
  t.bf16_unit_name = [] { return amx::unit_name(); };
  t.amx_tiles = [] { return amx::unit() == amx::Unit::tiles; };
  fill_int8(t);
  t.openmp = openmp.c_str();
  t.eigen_simd = eigen_simd.c_str();
  t.compiler = compiler.c_str();
  // Fixes the default thread count when the library loads, before other libraries in the process can change the
  // runtime's.
  rnnfast::set_num_threads(rnnfast::max_threads());
  Eigen::initParallel();
  return t;
}

}  // namespace
}  // namespace rnnfast::RNNFAST_KERNEL_NS

extern "C" __attribute__((visibility("default"))) const rnnfast::KernelTable* RNNFAST_KERNEL_ENTRY() {
  static const rnnfast::KernelTable table = rnnfast::RNNFAST_KERNEL_NS::make_table();
  return &table;
}
