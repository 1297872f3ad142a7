# Installs libguest for kernels built outside this tree, from the freestanding images build:
#
#   cmake --install build/default/images --prefix PREFIX
#
# A kernel's project then configures with
#   -DCMAKE_TOOLCHAIN_FILE=PREFIX/lib/cmake/pvkit/toolchain-x86_64-freestanding.cmake
#   -DCMAKE_PREFIX_PATH=PREFIX
# and find_package(pvkit) gives pvkit::guest (every part) or the parts one by one (pvkit::guest_boot,
# pvkit::guest_events ...), the generated ABI headers (pvkit::abi), add_guest_image() and
# PVKIT_GUEST_LINKER_SCRIPT. tests/package builds such a kernel and boots it.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(pvkit_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/pvkit)
install(TARGETS pvkit_abi guest_boot guest_ring guest_events guest_format guest_memory guest_time guest_console
                guest_grants guest_start guest_xenstore guest_traps guest_runtime guest_all
        EXPORT pvkitTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}/pvkit)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/libguest/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PVKIT_GEN_DIR}/include/pvkit/xen-abi.h ${PVKIT_GEN_DIR}/include/pvkit/abi.hpp
              ${PVKIT_GEN_DIR}/include/pvkit/hypercalls.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/pvkit)
install(EXPORT pvkitTargets NAMESPACE pvkit:: DESTINATION ${pvkit_cmake_dir})
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/pvkitConfig.cmake.in ${CMAKE_BINARY_DIR}/pvkitConfig.cmake
                              INSTALL_DESTINATION ${pvkit_cmake_dir})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/pvkitConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/pvkitConfig.cmake ${CMAKE_BINARY_DIR}/pvkitConfigVersion.cmake
              ${PVKIT_GUEST_LINKER_SCRIPT} ${CMAKE_SOURCE_DIR}/cmake/PvkitImages.cmake
              ${CMAKE_SOURCE_DIR}/cmake/toolchain-x86_64-freestanding.cmake
        DESTINATION ${pvkit_cmake_dir})
