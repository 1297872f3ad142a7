# Image helpers for the freestanding build.
#
#   add_hypervisor_image(NAME SOURCES src... LINKER_SCRIPT file [LIBRARIES lib...])
#   add_guest_image(NAME SOURCES src... [LINKER_SCRIPT file] [LIBRARIES lib...] [CODE_MODEL kernel|small])
#
# Both produce NAME.elf. A hypervisor image is position-independent code linked into the Xen-reserved
# range. A guest picks the code model that fits where it is linked: `kernel` for the top 2 GiB
# (Linux's VIRT_BASE), `small` low down; without CODE_MODEL it stays position-independent.

function(_pvkit_add_image name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "LINKER_SCRIPT;CODE_MODEL" "SOURCES;LIBRARIES")
  if(NOT ARG_SOURCES OR NOT ARG_LINKER_SCRIPT)
    message(FATAL_ERROR "${name}: SOURCES and LINKER_SCRIPT are required")
  endif()
  get_filename_component(script ${ARG_LINKER_SCRIPT} ABSOLUTE)
  add_executable(${name} ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES SUFFIX ".elf" LINK_DEPENDS ${script})
  target_compile_options(${name} PRIVATE -Wall -Wextra)
  if(ARG_CODE_MODEL)
    if(NOT ARG_CODE_MODEL MATCHES "^(kernel|small)$")
      message(FATAL_ERROR "${name}: CODE_MODEL must be kernel or small, not '${ARG_CODE_MODEL}'")
    endif()
    target_compile_options(${name} PRIVATE -fno-pie -mcmodel=${ARG_CODE_MODEL})
  endif()
  target_link_options(${name} PRIVATE -T ${script})
  target_link_libraries(${name} PRIVATE ${ARG_LIBRARIES} gcc)
endfunction()

function(add_hypervisor_image name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "CODE_MODEL" "")
  if(ARG_CODE_MODEL)
    message(FATAL_ERROR "${name}: a hypervisor image is position-independent; it takes no CODE_MODEL")
  endif()
  _pvkit_add_image(${name} ${ARGN})
endfunction()

# A guest's LINKER_SCRIPT defaults to libguest's (PVKIT_GUEST_LINKER_SCRIPT: the kernel linked at
# Linux's VIRT_BASE, so CODE_MODEL kernel).
function(add_guest_image name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "LINKER_SCRIPT" "")
  if(NOT ARG_LINKER_SCRIPT)
    set(ARG_LINKER_SCRIPT ${PVKIT_GUEST_LINKER_SCRIPT})
  endif()
  _pvkit_add_image(${name} LINKER_SCRIPT ${ARG_LINKER_SCRIPT} ${ARG_UNPARSED_ARGUMENTS})
endfunction()
