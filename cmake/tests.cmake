# Check suites: one executable per tests/test_*.c listed here.
pkg_check_modules(CHECK REQUIRED IMPORTED_TARGET check)
set(UFP_TEST_TIMEOUT 300)
function(ufp_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LABEL" ${ARGN})
  add_executable(${name} tests/${name}.c ${T_SOURCES})
  target_include_directories(${name} PRIVATE tests tools/ufpagerctl tools/ufpagerctl/bench)
  target_link_libraries(${name} PRIVATE ufpager_internal PkgConfig::CHECK)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_LABEL)
    set(T_LABEL unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT ${UFP_TEST_TIMEOUT})
  endif()
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77 LABELS "${T_LABEL}"
                       TIMEOUT ${T_TIMEOUT})
endfunction()

ufp_test(test_region)
ufp_test(test_api)
ufp_test(test_faults LABEL unit race)

# The benchmarks must run: a short smoke of each suite that needs no root.
add_test(NAME bench_smoke COMMAND ufpagerctl bench tree locks faults --quick
         --seconds 0.05 --pages 500 --writer-mb 16 --threads 1,2 --writers 0,1)
add_test(NAME ufpagerctl_check COMMAND ufpagerctl check)
add_test(NAME bench_alloc_smoke COMMAND ufpagerctl bench alloc --quick --seconds 0.1)
set_tests_properties(bench_smoke ufpagerctl_check bench_alloc_smoke PROPERTIES LABELS bench
                     TIMEOUT 300)

# The CLI's contract (exit status, messages, --help on every command,
# --version) and bench --json that parses even when a ratio's denominator
# is 0 (UFPAGERCTL_BENCH_ZERO_DEN forces one): tests/cli_test.sh.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME ufpagerctl_cli COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tests/cli_test.sh
           $<TARGET_FILE:ufpagerctl> ${Python3_EXECUTABLE})
  set_tests_properties(ufpagerctl_cli PROPERTIES LABELS bench TIMEOUT 120)
  # a live process is not read through a segment an earlier one with its
  # pid left behind (root: it makes the pid reuse happen)
  add_test(NAME stale_segment COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tests/stale_segment_test.sh
           $<TARGET_FILE:ufpagerctl>)
  set_tests_properties(stale_segment PROPERTIES LABELS unit TIMEOUT 60 SKIP_RETURN_CODE 77)
  if(UFP_SANITIZE)
    set_tests_properties(ufpagerctl_cli PROPERTIES ENVIRONMENT UFP_SANITIZED=1)
  endif()
  # libufpager.so exports exactly the functions include/ufpager.h declares.
  add_test(NAME check_exports COMMAND ${Python3_EXECUTABLE}
           ${CMAKE_CURRENT_SOURCE_DIR}/tests/check_exports.py
           ${CMAKE_CURRENT_SOURCE_DIR}/include/ufpager.h $<TARGET_FILE:ufpager>
           ${CMAKE_CURRENT_SOURCE_DIR}/src/libufpager.map)
  set_tests_properties(check_exports PROPERTIES LABELS unit TIMEOUT 60)
  # src/ is layered: no circle among the library's files, no call up
  # (src/README.md lists the layers).
  add_test(NAME check_layers COMMAND ${Python3_EXECUTABLE}
           ${CMAKE_CURRENT_SOURCE_DIR}/tests/check_layers.py
           ${CMAKE_BINARY_DIR}/CMakeFiles/ufpager.dir
           ${CMAKE_CURRENT_SOURCE_DIR}/src/README.md)
  set_tests_properties(check_layers PROPERTIES LABELS unit TIMEOUT 60)
  # The library's objects never come from the process's malloc (which a
  # ufpager heap may serve): only src/slab.c may call it.
  add_test(NAME check_no_malloc COMMAND ${Python3_EXECUTABLE}
           ${CMAKE_CURRENT_SOURCE_DIR}/tests/check_no_malloc.py
           ${CMAKE_BINARY_DIR}/CMakeFiles/ufpager.dir)
  set_tests_properties(check_no_malloc PROPERTIES LABELS unit TIMEOUT 60)
  # The one JSON writer refuses non-finite numbers: null plus a reason.
  add_executable(json_emit_test tests/json_emit_test.c tools/ufpagerctl/json.c)
  target_include_directories(json_emit_test PRIVATE tools/ufpagerctl)
  target_link_libraries(json_emit_test PRIVATE m)
  add_test(NAME json_emitter COMMAND sh -c "\"$1\" | \"$2\" -c \"$3\"" sh
           $<TARGET_FILE:json_emit_test> ${Python3_EXECUTABLE}
           "import json,sys; d=json.load(sys.stdin); r=d['rows'][0]; assert r['zero_den'] is None and r['zero_den_null_reason']=='kernel faults/s is 0', r; assert r['inf'] is None and 'inf' in r['inf_null_reason'] and r['nan'] is None and r['ratio']==0.25 and r['big']==123456789012 and r['u64']==2**64-1 and r['esc'].startswith('quote'), r; assert d['rows'][1] is None; s=d['summary']['headline.per_region_over_global']; assert s['value'] is None and s['value_null_reason'] and s['text'], s; print('ok')")
  set_tests_properties(json_emitter PROPERTIES LABELS bench TIMEOUT 30)
endif()

# The lock protocol and the region tree on the library's internals (no
# userfaultfd, no API): a test-side program, since ufpagerctl links only
# the public library. A short smoke here; run it by hand for figures.
add_executable(bench_proto tests/bench_proto.c tools/ufpagerctl/bench/bench_crew.c
               tools/ufpagerctl/bench/bench_rows.c tools/ufpagerctl/json.c
               tools/ufpagerctl/bench/kbase.c)
target_include_directories(bench_proto PRIVATE tools/ufpagerctl tools/ufpagerctl/bench)
target_link_libraries(bench_proto PRIVATE ufpager_internal m)
add_test(NAME bench_proto_smoke COMMAND bench_proto --quick)
set_tests_properties(bench_proto_smoke PROPERTIES LABELS bench TIMEOUT 300)
# The cost of each step of one swap-in fault and one eviction (delivery,
# decompress or read, COPY vs refault+MOVE install, hash, MOVE out,
# DONTNEED, compress, PAGEMAP_SCAN), alone and beside an mmap_lock writer:
# standalone (plain syscalls; src/ only for uffd_compat.h). The smoke
# fails (1) when an install read back through the arena has the wrong
# content; 77 without userfaultfd.
add_executable(bench_cost tests/bench_cost.c tools/ufpagerctl/json.c)
target_include_directories(bench_cost PRIVATE src tools/ufpagerctl)
target_link_libraries(bench_cost PRIVATE PkgConfig::LZ4 PkgConfig::XXHASH Threads::Threads m)
add_test(NAME bench_cost_smoke COMMAND bench_cost --quick)
set_tests_properties(bench_cost_smoke PROPERTIES LABELS bench TIMEOUT 120 SKIP_RETURN_CODE 77)
# The soak, briefly: every operation, fork and injected fault kind of the
# soak for 6 seconds. Label "soak", not in the default suite (it needs the
# machine's CPUs and swap-file I/O for itself; see the README's Soak
# section for what it found and the runs it passed).
add_test(NAME bench_soak_short COMMAND ufpagerctl bench soak --seconds 6)
set_tests_properties(bench_soak_short PROPERTIES LABELS soak TIMEOUT 120 SKIP_RETURN_CODE 77)

# The README's quick start compiles against the installed-style public
# header and the shared library, and runs.
# A swap-in on every access, for perf (README "Per-fault costs on the real
# path"); the smoke checks every page after a short run.
add_executable(swapin_cost tools/perf/swapin_cost.c)
target_link_libraries(swapin_cost PRIVATE ufpager)
add_test(NAME swapin_cost_smoke COMMAND swapin_cost 20000)
set_tests_properties(swapin_cost_smoke PROPERTIES LABELS bench SKIP_RETURN_CODE 77 TIMEOUT 120)

add_executable(quickstart examples/quickstart.c)
target_link_libraries(quickstart PRIVATE ufpager)
add_test(NAME readme_quickstart COMMAND quickstart)
set_tests_properties(readme_quickstart PROPERTIES LABELS unit SKIP_RETURN_CODE 77 TIMEOUT 60)
ufp_test(test_swap LABEL unit race)
# swap over NBD against nbdkit and nbd-server (skips without them)
ufp_test(test_swap_nbd LABEL unit)
ufp_test(test_locks LABEL race)

# The long stress run: the data test of test_locks for 2 minutes across
# every delivery and lock mode (scripts/test.sh --stress).
add_test(NAME stress_long COMMAND test_locks)
set_tests_properties(stress_long PROPERTIES LABELS stress TIMEOUT 900 SKIP_RETURN_CODE 77
                     ENVIRONMENT "CK_RUN_CASE=stress;UFP_STRESS_SECONDS=120")

ufp_test(test_stats)
target_compile_definitions(test_stats PRIVATE UFPAGERCTL_PATH="$<TARGET_FILE:ufpagerctl>")
add_dependencies(test_stats ufpagerctl)

# The swap backend on its own: slots, tier, checksums, injection, punching.
ufp_test(test_swap_backend LABEL unit race)

# Stress: random structural ops, faults, evictions and fork with data
# patterns, UFP_STRESS_SECONDS per mode (10 s by default; the soak entry
# runs 2 minutes per mode: scripts/test.sh --stress).
ufp_test(test_stress LABEL unit race TIMEOUT 900)
add_test(NAME stress_soak COMMAND test_stress)
set_tests_properties(stress_soak PROPERTIES LABELS stress TIMEOUT 1500 SKIP_RETURN_CODE 77
                     ENVIRONMENT "UFP_STRESS_SECONDS=120")

# The kernel baselines the benchmarks compare against (root, swap, zram):
# one entry per group so a missing prerequisite skips only that group.
foreach(g hist touch swapfile zram)
  if(NOT TARGET test_kbase)
    add_executable(test_kbase tests/test_kbase.c tools/ufpagerctl/bench/kbase.c)
    target_include_directories(test_kbase PRIVATE tests tools/ufpagerctl/bench)
    target_link_libraries(test_kbase PRIVATE ufpager_internal PkgConfig::CHECK m)
  endif()
  add_test(NAME kbase_${g} COMMAND test_kbase)
  set_tests_properties(kbase_${g} PROPERTIES LABELS bench SKIP_RETURN_CODE 77 TIMEOUT 300
                       ENVIRONMENT "KBASE_TESTS=${g}" RESOURCE_LOCK kernel_swap)
endforeach()

# A reproducer of a Linux 6.18 UFFDIO_MOVE bug (moves a uffd-wp page and
# still returns -EEXIST); label "kernel", not in the default suite.
find_package(Threads REQUIRED)
add_executable(kernel_move_wp_race tests/kernel_move_wp_race.c)
target_include_directories(kernel_move_wp_race PRIVATE src)
target_link_libraries(kernel_move_wp_race PRIVATE Threads::Threads)
add_test(NAME kernel_move_wp_race COMMAND kernel_move_wp_race 1 1 0 30)
set_tests_properties(kernel_move_wp_race PROPERTIES LABELS kernel TIMEOUT 120 SKIP_RETURN_CODE 77)

# Regressions of the outside stress and misuse run (fork, mremap, full
# /dev/shm, many pagers per thread, small stacks, old stats structs).
ufp_test(test_reliability LABEL unit race)

# Fault injection and the watchdog: errors at eviction and swap-in, EAGAIN
# storms, delays, dying service threads.
ufp_test(test_inject LABEL unit)
# What the soak found (issue 9, item 16), in seconds.
ufp_test(test_soak_regress LABEL unit race)
ufp_test(test_writer LABEL unit)
ufp_test(test_park LABEL unit race)
ufp_test(test_sys_calls LABEL unit)

# The seccomp allowlist of the service threads: forbidden calls end the
# thread with a logged reason, the swap workload runs under it, the switch.
ufp_test(test_sandbox LABEL unit)

# The heap (issue 13): the malloc family on pager memory.
ufp_test(test_heap LABEL unit)
# The heap serving this process's malloc (an in-test interposer, as a
# preload would do it): the library never re-enters it nor deadlocks.
# Not in sanitizer builds (their runtimes own malloc).
if(NOT UFP_SANITIZE)
  add_executable(test_heap_interpose tests/test_heap_interpose.c)
  target_link_libraries(test_heap_interpose PRIVATE ufpager ${CMAKE_DL_LIBS})
  foreach(mode sigbus handler)
    add_test(NAME heap_interpose_${mode} COMMAND test_heap_interpose ${mode})
    set_tests_properties(heap_interpose_${mode} PROPERTIES LABELS unit SKIP_RETURN_CODE 77
                         TIMEOUT 180)
  endforeach()
endif()

# cmake --install into a temporary prefix, then build and run the examples
# against it with pkg-config and with find_package(ufpager). Not in
# sanitizer builds: their library needs the sanitizer runtime first in
# the programs that link it, which a user's program does not have.
if(NOT UFP_SANITIZE)
  add_test(NAME install_prefix COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tests/install_test.sh
           ${CMAKE_COMMAND} ${CMAKE_BINARY_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(install_prefix PROPERTIES LABELS unit SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()
# examples/heap.c: the README's "link the heap" example
add_executable(heap_example examples/heap.c)
target_link_libraries(heap_example PRIVATE ufpager)
add_test(NAME readme_heap COMMAND heap_example)
set_tests_properties(readme_heap PROPERTIES LABELS unit SKIP_RETURN_CODE 77 TIMEOUT 120)

# `ufpagerctl run` and its preload (label apps: the debug stage of
# scripts/test.sh only; a sanitizer runtime must come first in
# LD_PRELOAD, which the preload cannot). test_preload is the program run
# under it; it links the public library only, to read its own segment.
add_executable(test_preload tests/test_preload.c)
target_include_directories(test_preload PRIVATE tests)
target_link_libraries(test_preload PRIVATE ufpager PkgConfig::CHECK ${CMAKE_DL_LIBS})
add_test(NAME preload COMMAND ufpagerctl run --budget 4M -- $<TARGET_FILE:test_preload>)
add_test(NAME preload_no_exec_follow COMMAND ufpagerctl run --budget 4M --no-exec-follow --
         $<TARGET_FILE:test_preload>)
set_tests_properties(preload_no_exec_follow PROPERTIES ENVIRONMENT UFP_TEST_EXEC_FOLLOW=0)
set_tests_properties(preload preload_no_exec_follow PROPERTIES LABELS apps SKIP_RETURN_CODE 77
                     TIMEOUT 120)
# Programs nobody here wrote, each under `ufpagerctl run --budget B` with
# B below its working set, its output compared with a run on the kernel
# (ufpagerctl bench apps; 77 when the program is not installed).
foreach(app python sqlite sort stress-vm stress-malloc redis java)
  add_test(NAME app_${app} COMMAND ufpagerctl bench apps --app ${app} --no-cgroup)
  set_tests_properties(app_${app} PROPERTIES LABELS apps SKIP_RETURN_CODE 77 TIMEOUT 120)
endforeach()
