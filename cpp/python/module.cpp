// The extension module: one per instruction set, same sources, named by the build (_core_baseline, ...).
#include <Eigen/Core>

#include "registry.hpp"
#include "rnnfast/amx.hpp"
#include "rnnfast/build_info.hpp"
#include "rnnfast/parallel.hpp"

#define RNNFAST_STR2(x) #x
#define RNNFAST_STR(x) RNNFAST_STR2(x)

namespace {

pybind11::dict cpu_features() {
  pybind11::dict f;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f["avx2"] = static_cast<bool>(__builtin_cpu_supports("avx2"));
  f["fma"] = static_cast<bool>(__builtin_cpu_supports("fma"));
  f["avx512f"] = static_cast<bool>(__builtin_cpu_supports("avx512f"));
  f["avx512bw"] = static_cast<bool>(__builtin_cpu_supports("avx512bw"));
  f["avx512dq"] = static_cast<bool>(__builtin_cpu_supports("avx512dq"));
  f["avx512vl"] = static_cast<bool>(__builtin_cpu_supports("avx512vl"));
  f["avx512cd"] = static_cast<bool>(__builtin_cpu_supports("avx512cd"));
#endif
  return f;
}

}  // namespace

PYBIND11_MODULE(RNNFAST_MODULE_NAME, m) {
  namespace py = pybind11;
  m.doc() = "rnnfast native core (" RNNFAST_ISA ")";
  m.attr("ISA") = RNNFAST_ISA;
  m.def("cpu_features", &cpu_features, "Instruction-set extensions of the running CPU");
  m.def("build_info", [] {
    py::dict d;
    d["isa"] = RNNFAST_ISA;
    d["openmp"] = rnnfast::openmp_runtime();
    d["eigen"] = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                 std::to_string(EIGEN_MINOR_VERSION);
    d["eigen_simd"] = std::string(Eigen::SimdInstructionSetsInUse());
    d["compiler"] = rnnfast::compiler_name();
    d["amx_bf16"] = rnnfast::amx::unit() == rnnfast::amx::Unit::tiles;
    // The unit bfloat16 matmul precision would use, or None.
    const char* bf16_unit = rnnfast::amx::unit_name();
    d["bf16_products"] = bf16_unit ? py::object(py::str(bf16_unit)) : py::object(py::none());
    return d;
  });
  // Fixes the default thread count at import, before other libraries in the process can change the runtime's.
  rnnfast::set_num_threads(rnnfast::max_threads());
  Eigen::initParallel();
  m.def("set_num_threads", &rnnfast::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &rnnfast::max_threads);
  // Python validates the name and whether this module can honour it (bf16_products in build_info).
  m.def("set_matmul_bfloat16", [](bool on) {
    rnnfast::matmul_precision_setting().store(
        static_cast<int>(on ? rnnfast::MatmulPrecision::bfloat16 : rnnfast::MatmulPrecision::float32));
  }, py::arg("on"));
  m.def("matmul_bfloat16", [] {
    return rnnfast::matmul_precision_setting().load() == static_cast<int>(rnnfast::MatmulPrecision::bfloat16);
  });
  for (auto& registration : rnnfast::bind::registrations()) registration(m);
}
