# Install rules: the headers, the exported nvgrace::nvgrace target, a package
# config with a version file, and a pkg-config file.
#
# nvgrace is header-only, so the CMake package and the .pc file go under share/.
# The installed package needs nothing but the C++ standard library and, for the
# parts that touch the system, the C library's POSIX headers (<unistd.h>,
# <sys/mman.h>, ...): no find_dependency() calls. No nvgrace header includes a
# kernel (UAPI) header; the VFIO ABI is nvgrace's own (nvgrace/vfio/abi.hpp).
include(CMakePackageConfigHelpers)

set(NVGRACE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_DATADIR}/cmake/nvgrace
    CACHE STRING "Where nvgraceConfig.cmake is installed (relative to the prefix)")
set(NVGRACE_INSTALL_PKGCONFIGDIR ${CMAKE_INSTALL_DATADIR}/pkgconfig
    CACHE STRING "Where nvgrace.pc is installed (relative to the prefix)")
mark_as_advanced(NVGRACE_INSTALL_CMAKEDIR NVGRACE_INSTALL_PKGCONFIGDIR)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/nvgrace DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(TARGETS nvgrace EXPORT nvgraceTargets)
install(EXPORT nvgraceTargets NAMESPACE nvgrace:: DESTINATION ${NVGRACE_INSTALL_CMAKEDIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/nvgraceConfig.cmake.in
  ${PROJECT_BINARY_DIR}/nvgraceConfig.cmake
  INSTALL_DESTINATION ${NVGRACE_INSTALL_CMAKEDIR})
# While the major version is 0, a new minor version may break the API, so a
# request for 0.1 accepts 0.1.x only (SameMinorVersion); from 1.0 on the rule
# becomes SameMajorVersion. The version itself comes from include/nvgrace/version.hpp.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_nvgrace_compatibility SameMinorVersion)
else()
  set(_nvgrace_compatibility SameMajorVersion)
endif()
# ARCH_INDEPENDENT: the installed files are the same for every target (headers
# and CMake/pkg-config text, nothing compiled), so the version file does not
# compare CMAKE_SIZEOF_VOID_P. That is not a promise that every architecture
# compiles them: nvgrace/vfio/abi.hpp (and so both umbrellas) stops with an
# #error where the ioctl encoding is not the asm-generic one (powerpc, mips,
# sparc, alpha, parisc), rather than give wrong ioctl numbers; the pointer-size
# check could not have said that anyway (powerpc64 and x86-64 both have 8-byte
# pointers). tests/static checks the #error (static_ioctl_arch_*_fails).
write_basic_package_version_file(${PROJECT_BINARY_DIR}/nvgraceConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY ${_nvgrace_compatibility}
  ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/nvgraceConfig.cmake ${PROJECT_BINARY_DIR}/nvgraceConfigVersion.cmake
  DESTINATION ${NVGRACE_INSTALL_CMAKEDIR})

# pkg-config: the prefix is found from the .pc file's own location, so the file
# stays right when the tree is installed with `cmake --install --prefix` or
# DESTDIR, or moved.
if(IS_ABSOLUTE "${NVGRACE_INSTALL_PKGCONFIGDIR}")
  set(NVGRACE_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _nvgrace_pc_up "/prefix/${NVGRACE_INSTALL_PKGCONFIGDIR}" "/prefix")
  string(REGEX REPLACE "/$" "" _nvgrace_pc_up "${_nvgrace_pc_up}")
  set(NVGRACE_PC_PREFIX "\${pcfiledir}/${_nvgrace_pc_up}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(NVGRACE_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(NVGRACE_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/nvgrace.pc.in ${PROJECT_BINARY_DIR}/nvgrace.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/nvgrace.pc DESTINATION ${NVGRACE_INSTALL_PKGCONFIGDIR})
