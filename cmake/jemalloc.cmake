# The heap's jemalloc (src/heap.c): Debian's libjemalloc_pic.a (package
# libjemalloc-dev, jemalloc 5.3), turned into one object whose only global
# symbols are the ufp_je_* entry points (cmake/jemalloc_private.sh), so that
# linking it never replaces the process's malloc.
pkg_check_modules(JEMALLOC REQUIRED jemalloc)
pkg_get_variable(JEMALLOC_LIBDIR jemalloc libdir)
set(UFP_JEMALLOC_ARCHIVE "${JEMALLOC_LIBDIR}/libjemalloc_pic.a")
if(NOT EXISTS "${UFP_JEMALLOC_ARCHIVE}")
  message(FATAL_ERROR "${UFP_JEMALLOC_ARCHIVE} is missing (Debian: apt-get install libjemalloc-dev)")
endif()
if(NOT JEMALLOC_VERSION VERSION_GREATER_EQUAL 5.3)
  message(FATAL_ERROR "jemalloc ${JEMALLOC_VERSION}: the heap needs 5.3 (experimental.arenas_create_ext)")
endif()
find_program(UFP_OBJCOPY NAMES objcopy REQUIRED)
set(UFP_JEMALLOC_OBJ "${CMAKE_BINARY_DIR}/ufp_jemalloc.o")
add_custom_command(OUTPUT "${UFP_JEMALLOC_OBJ}"
  COMMAND sh "${CMAKE_CURRENT_SOURCE_DIR}/cmake/jemalloc_private.sh" "${UFP_JEMALLOC_ARCHIVE}"
          "${UFP_JEMALLOC_OBJ}" "${CMAKE_AR}" "${CMAKE_LINKER}" "${UFP_OBJCOPY}"
  DEPENDS "${UFP_JEMALLOC_ARCHIVE}" "${CMAKE_CURRENT_SOURCE_DIR}/cmake/jemalloc_private.sh"
  COMMENT "jemalloc: a private copy for the heap (ufp_je_*)")
set_source_files_properties("${UFP_JEMALLOC_OBJ}" PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
