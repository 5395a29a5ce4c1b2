// Compiled without the instruction-set flags of the rest of its test program (see CMakeLists.txt), and run as a
// constructor before any other static initialisation: on a CPU that cannot run this program's instruction set
// (an avx512 build on an AVX2 machine), it exits with status 77, which ctest reports as skipped, before the first
// AVX-512 instruction could raise SIGILL. C library calls only: an inline C++ function shared with the other
// translation units would be kept in one copy, built for whichever instruction set the linker saw first.
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef RNNFAST_TEST_ISA
#error "RNNFAST_TEST_ISA must name the test program's instruction set (baseline, avx2 or avx512)"
#endif

namespace {

bool cpu_runs(const char* isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (strcmp(isa, "avx2") == 0) {
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
    return __builtin_cpu_supports("x86-64-v3");
#else
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
#endif
  }
  if (strcmp(isa, "avx512") == 0) {
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
    return __builtin_cpu_supports("x86-64-v4");
#else
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
#endif
  }
#endif
  (void)isa;
  return true;  // baseline, or not x86
}

__attribute__((constructor(101))) void skip_unless_cpu_runs_this_build() {
  if (cpu_runs(RNNFAST_TEST_ISA)) return;
  printf("SKIP: this CPU cannot run the %s build of the native tests\n", RNNFAST_TEST_ISA);
  fflush(stdout);
  _exit(77);
}

}  // namespace
