# cmake --install BUILD [--prefix P]: what a user of the library gets, as
# liburing and mimalloc install it: libufpager.so (soname libufpager.so.0),
# include/ufpager.h, ufpager.pc (pkg-config), a CMake package
# (find_package(ufpager) -> ufpager::ufpager), ufpagerctl, and the man
# pages ufpagerctl(1) and ufpager(3).
#
# More installed targets (the preload library) go through
# ufp_install_targets(name ...): shared libraries to LIBDIR, programs to
# BINDIR, under the same export set.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

function(ufp_install_targets)
  install(TARGETS ${ARGN} EXPORT ufpagerTargets
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
          INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endfunction()

# Installed programs find the installed library wherever the prefix is.
set_target_properties(ufpagerctl PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
ufp_install_targets(ufpager ufpagerctl)
install(FILES include/ufpager.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

file(RELATIVE_PATH UFP_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
string(REGEX REPLACE "/$" "" UFP_PC_TO_PREFIX "${UFP_PC_TO_PREFIX}")
configure_file(cmake/ufpager.pc.in ufpager.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ufpager.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

set(UFP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/ufpager)
install(EXPORT ufpagerTargets NAMESPACE ufpager:: DESTINATION ${UFP_CMAKE_DIR})
configure_package_config_file(cmake/ufpagerConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/ufpagerConfig.cmake INSTALL_DESTINATION ${UFP_CMAKE_DIR})
# 0.x: a minor version may change the API (SameMinorVersion)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/ufpagerConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ufpagerConfig.cmake
        ${CMAKE_CURRENT_BINARY_DIR}/ufpagerConfigVersion.cmake DESTINATION ${UFP_CMAKE_DIR})

install(FILES man/ufpagerctl.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES man/ufpager.3 DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)
