# Freestanding x86-64 with the host GCC: no libc, no exceptions, no RTTI, no red zone (interrupts
# and the hypervisor's bounce frames write below rsp), no SSE (registers not saved on entry).
# Code is position-independent (RIP-relative) so the same objects link into the hypervisor at
# 0xFFFF82D0_80000000 and into guests anywhere; images are linked static at fixed addresses.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER gcc)
set(CMAKE_CXX_COMPILER g++)
set(CMAKE_ASM_COMPILER gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(PVKIT_FREESTANDING ON)

set(_pvkit_common "-ffreestanding -fno-stack-protector -mno-red-zone -mgeneral-regs-only -fpie -fno-plt -fno-asynchronous-unwind-tables -fno-unwind-tables")
set(CMAKE_C_FLAGS_INIT "${_pvkit_common}")
set(CMAKE_CXX_FLAGS_INIT "${_pvkit_common} -fno-exceptions -fno-rtti -fno-threadsafe-statics")
set(CMAKE_ASM_FLAGS_INIT "${_pvkit_common}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-nostdlib -static -no-pie -Wl,-z,max-page-size=0x1000 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments -Wl,--build-id=none")
