// The extension module `_core`: compiled once with baseline flags; its kernels come from the per-instruction-set
// library that load_kernels opens (cpp/src/kernel_table.hpp). rnnfast/_native.py picks the instruction set.
#include <dlfcn.h>
#include <sys/stat.h>

#include <Eigen/Core>
#include <algorithm>
#include <string>
#include <vector>

#include "registry.hpp"

#define RNNFAST_STR2(x) #x
#define RNNFAST_STR(x) RNNFAST_STR2(x)

namespace rnnfast::bind {
namespace {

const std::vector<std::string> kIsas = {"baseline", "avx2", "avx512"};

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

// The kernel libraries are installed next to this module, wherever that is (site-packages, a build tree).
std::string kernel_library(const std::string& isa) {
  Dl_info info;
  if (!dladdr(reinterpret_cast<void*>(&cpu_features), &info) || !info.dli_fname)
    throw std::runtime_error("rnnfast._core: cannot find the module's own file (dladdr failed)");
  const std::string self = info.dli_fname;
  const size_t slash = self.rfind('/');
  return (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/_core_kernels_" + isa + ".so";
}

bool file_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

py::list built_isas() {
  py::list built;
  for (const auto& isa : kIsas)
    if (file_exists(kernel_library(isa))) built.append(isa);
  return built;
}

// Opened for good (never dlclosed): the kernels' thread-local buffers and OpenMP threads live as long as the process.
const KernelTable* open_kernels(const std::string& isa) {
  const std::string path = kernel_library(isa);
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    throw py::import_error("rnnfast._core: cannot load " + path + ": " + (why ? why : "unknown error"));
  }
  const auto entry = reinterpret_cast<rnnfast_kernel_entry_fn>(dlsym(handle, RNNFAST_STR(RNNFAST_KERNEL_ENTRY)));
  if (!entry) throw py::import_error("rnnfast._core: " + path + " has no " RNNFAST_STR(RNNFAST_KERNEL_ENTRY));
  const KernelTable* table = entry();
  if (table->abi != RNNFAST_KERNEL_ABI || table->size != static_cast<int64_t>(sizeof(KernelTable)) ||
      std::string(table->isa) != isa)
    throw py::import_error("rnnfast._core: " + path + " is from another build of rnnfast (reinstall the package)");
  return table;
}

void load_kernels(py::module_& m, const std::string& isa) {
  if (std::find(kIsas.begin(), kIsas.end(), isa) == kIsas.end())
    throw std::invalid_argument("isa: got '" + isa + "', expected one of baseline, avx2, avx512");
  LoadedKernels& loaded = loaded_kernels();
  if (loaded.f32) {
    if (isa == loaded.f32->isa) return;
    throw std::runtime_error(std::string("isa: the ") + loaded.f32->isa + " kernels are loaded already; " +
                             "a process uses one instruction set");
  }
  const KernelTable* f64 = open_kernels("baseline");
  if (!f64->has_f64) throw py::import_error("rnnfast._core: the baseline kernels hold no float64 kernels");
  const KernelTable* f32 = isa == "baseline" ? f64 : open_kernels(isa);
  // Both libraries start from the same OpenMP runtime default; set it in both so they agree from here on.
  const int threads = f32->max_threads();
  f32->set_num_threads(threads);
  f64->set_num_threads(threads);
  loaded.f32 = f32;
  loaded.f64 = f64;
  m.attr("ISA") = isa;
}

// Every loaded library (one or two), for the process-wide settings each keeps.
std::vector<const KernelTable*> loaded_tables() {
  const LoadedKernels& k = loaded_kernels();
  if (!k.f32) throw std::runtime_error("rnnfast._core: no kernels loaded (import rnnfast, which loads them)");
  if (k.f32 == k.f64) return {k.f32};
  return {k.f32, k.f64};
}

py::dict build_info() {
  const KernelTable& t = *loaded_tables().front();
  py::dict d;
  d["isa"] = t.isa;
  d["float64_isa"] = loaded_kernels().f64->isa;
  d["openmp"] = t.openmp;
  d["eigen"] = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
               std::to_string(EIGEN_MINOR_VERSION);
  d["eigen_simd"] = t.eigen_simd;
  d["compiler"] = t.compiler;
  d["amx_bf16"] = t.amx_tiles();
  // The unit bfloat16 matmul precision would use, or None.
  const char* bf16_unit = t.bf16_unit_name();
  d["bf16_products"] = bf16_unit ? py::object(py::str(bf16_unit)) : py::object(py::none());
  // The unit that multiplies int8 weights: avx512_vnni, avx512bw, avx_vnni, avx2 or scalar.
  d["int8_unit"] = t.int8_unit_name();
  return d;
}

}  // namespace
}  // namespace rnnfast::bind

PYBIND11_MODULE(_core, m) {
  namespace py = pybind11;
  using namespace rnnfast::bind;
  m.doc() = "rnnfast native core: bindings compiled once, kernels loaded per instruction set (load_kernels)";
  m.attr("ISA") = py::none();
  m.def("cpu_features", &cpu_features, "Instruction-set extensions of the running CPU");
  m.def("built_isas", &built_isas, "Instruction sets whose kernel library is installed next to this module");
  m.def(
      "load_kernels", [m](const std::string& isa) mutable { load_kernels(m, isa); }, py::arg("isa"),
      "Load the kernels of one instruction set (once per process; the CPU must support it); sets ISA.");
  m.def("build_info", &build_info,
        "The loaded kernels: instruction set, OpenMP runtime, Eigen, compiler, "
        "bfloat16 product unit");
  m.def(
      "set_num_threads",
      [](int n) {
        for (const auto* t : loaded_tables()) t->set_num_threads(n);
      },
      py::arg("n"), "Threads for every kernel in this process (at least 1)");
  m.def("get_num_threads", [] { return loaded_tables().front()->max_threads(); });
  m.def("threads_in_use", [] { return loaded_tables().front()->threads_in_use(); });
  // Python validates the name and whether the kernels can honour it (bf16_products in build_info).
  m.def(
      "set_matmul_bfloat16",
      [](bool on) {
        for (const auto* t : loaded_tables()) t->set_matmul_bfloat16(on);
      },
      py::arg("on"), "float32 products with bfloat16 operands (on) or float32 ones (off)");
  m.def("matmul_bfloat16", [] { return loaded_tables().front()->matmul_bfloat16(); });
  for (auto& registration : registrations()) registration(m);
}
