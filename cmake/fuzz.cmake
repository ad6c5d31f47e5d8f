# libFuzzer targets (UFP_FUZZ=ON; configure with CC=clang). Included before
# the library is defined: when clang's libFuzzer links, every target is
# built with -fsanitize=fuzzer-no-link (coverage) plus address,undefined
# unless UFP_SANITIZE says otherwise. Without it, the fuzz tests are still
# registered and skip (exit 77) saying why, so `ctest -L fuzz` never fails
# for want of a compiler. Bounded runs: UFP_FUZZ_SECONDS per target over the
# committed corpus (tests/fuzz/corpus/<name>); new inputs and crash files go
# to the build directory, never into the source tree.
include(CheckCSourceCompiles)
set(UFP_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzz test runs (ctest -L fuzz)")
set(UFP_FUZZ_NAMES api export)

set(CMAKE_REQUIRED_FLAGS "-fsanitize=fuzzer")
check_c_source_compiles("
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return d && n; }
" UFP_HAVE_LIBFUZZER)
unset(CMAKE_REQUIRED_FLAGS)
if(UFP_HAVE_LIBFUZZER)
  if(NOT UFP_SANITIZE)
    set(UFP_SANITIZE address,undefined)
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
else()
  set(UFP_FUZZ_WHY "the C compiler (${CMAKE_C_COMPILER_ID} ${CMAKE_C_COMPILER}) cannot link -fsanitize=fuzzer: configure with CC=clang and install clang and libclang-rt-14-dev (scripts/deps.sh)")
  message(STATUS "ufpager: fuzz tests will skip: ${UFP_FUZZ_WHY}")
endif()

function(ufp_fuzz_targets)
  foreach(f ${UFP_FUZZ_NAMES})
    if(UFP_HAVE_LIBFUZZER)
      add_executable(fuzz_${f} tests/fuzz/fuzz_${f}.c)
      target_link_libraries(fuzz_${f} PRIVATE ufpager_internal)
      target_link_options(fuzz_${f} PRIVATE -fsanitize=fuzzer)
      add_test(NAME fuzz_${f} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tests/fuzz/run.sh
               $<TARGET_FILE:fuzz_${f}> ${CMAKE_CURRENT_SOURCE_DIR}/tests/fuzz/corpus/${f}
               ${CMAKE_CURRENT_BINARY_DIR}/fuzz-${f} ${UFP_FUZZ_SECONDS})
    else()
      add_test(NAME fuzz_${f} COMMAND sh -c "echo 'SKIP: fuzz_${f}: ${UFP_FUZZ_WHY}'; exit 77")
    endif()
    math(EXPR t "${UFP_FUZZ_SECONDS} * 3 + 60")
    set_tests_properties(fuzz_${f} PROPERTIES LABELS fuzz SKIP_RETURN_CODE 77 TIMEOUT ${t})
  endforeach()
endfunction()
