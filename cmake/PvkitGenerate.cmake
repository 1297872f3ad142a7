# Runs hypercall-spec/generate.py at build time and offers its headers as the target pvkit::abi.
set(PVKIT_SPEC_DIR ${CMAKE_SOURCE_DIR}/hypercall-spec)
set(PVKIT_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
file(GLOB PVKIT_SPEC_INPUTS CONFIGURE_DEPENDS
  ${PVKIT_SPEC_DIR}/spec/*.toml ${PVKIT_SPEC_DIR}/generate.py ${PVKIT_SPEC_DIR}/specgen/*.py)
set(PVKIT_GEN_OUTPUTS
  ${PVKIT_GEN_DIR}/include/pvkit/xen-abi.h
  ${PVKIT_GEN_DIR}/include/pvkit/abi.hpp
  ${PVKIT_GEN_DIR}/include/pvkit/hypercalls.hpp
  ${PVKIT_GEN_DIR}/include/hv/hypercall_dispatch.hpp
  ${PVKIT_GEN_DIR}/abi_check.c
  ${PVKIT_GEN_DIR}/hypercalls.md)
# The generator rewrites only the outputs whose text changed, so an edit to one part of the spec
# recompiles only what includes the headers it changed; the stamp records that the rule ran.
add_custom_command(
  OUTPUT ${PVKIT_GEN_DIR}/generated.stamp
  BYPRODUCTS ${PVKIT_GEN_OUTPUTS}
  COMMAND Python3::Interpreter ${PVKIT_SPEC_DIR}/generate.py --out ${PVKIT_GEN_DIR}
  COMMAND ${CMAKE_COMMAND} -E touch ${PVKIT_GEN_DIR}/generated.stamp
  DEPENDS ${PVKIT_SPEC_INPUTS}
  COMMENT "Generating the ABI headers from hypercall-spec"
  VERBATIM)
add_custom_target(pvkit_generated DEPENDS ${PVKIT_GEN_DIR}/generated.stamp)
add_library(pvkit_abi INTERFACE)
add_library(pvkit::abi ALIAS pvkit_abi)
set_target_properties(pvkit_abi PROPERTIES EXPORT_NAME abi)
target_include_directories(pvkit_abi INTERFACE $<BUILD_INTERFACE:${PVKIT_GEN_DIR}/include> $<INSTALL_INTERFACE:include>)
add_dependencies(pvkit_abi pvkit_generated)
