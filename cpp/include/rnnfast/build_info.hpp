// What the core was built with, for rf.build_info() and the native benchmark's header.
#pragma once

#include <string>

namespace rnnfast {

inline std::string compiler_name() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "gcc " __VERSION__;
#else
  return "unknown";
#endif
}

inline std::string openmp_runtime() {
#ifdef _OPENMP
#if defined(__clang__)
  return "libomp (OpenMP " + std::to_string(_OPENMP) + ")";
#else
  return "libgomp (OpenMP " + std::to_string(_OPENMP) + ")";
#endif
#else
  return "none";
#endif
}

}  // namespace rnnfast
