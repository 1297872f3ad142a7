// The exception handlers (pvkit/traps.h). A vector's entry goes into the trap table with its first
// handler and stays: set_trap_table cannot take one entry out (only clear the whole table, a
// kernel's own entries too), so a vector whose handler was taken away crashes from the dispatcher.
#include <guest/start.hpp>
#include <pvkit/format.h>
#include <pvkit/hypercalls.hpp>
#include <pvkit/traps.h>

#include <cstddef>

namespace {
namespace abi = pvkit::abi;
namespace hypercall = pvkit::hypercall;

constexpr unsigned vector_count = 32;
constexpr unsigned page_fault = 14;
constexpr std::uint8_t events_masked = 4;  // trap_info.flags: the handler starts with events masked
constexpr std::uint8_t user_may_raise = 3;  // trap_info.flags DPL 3: int3 and into work from user mode

extern "C" char pvk_trap_entry_0[], pvk_trap_entry_1[], pvk_trap_entry_3[], pvk_trap_entry_4[],
    pvk_trap_entry_5[], pvk_trap_entry_6[], pvk_trap_entry_7[], pvk_trap_entry_9[], pvk_trap_entry_10[],
    pvk_trap_entry_11[], pvk_trap_entry_12[], pvk_trap_entry_13[], pvk_trap_entry_14[], pvk_trap_entry_15[],
    pvk_trap_entry_16[], pvk_trap_entry_17[], pvk_trap_entry_19[], pvk_trap_entry_20[], pvk_trap_entry_21[],
    pvk_trap_entry_22[], pvk_trap_entry_23[], pvk_trap_entry_24[], pvk_trap_entry_25[], pvk_trap_entry_26[],
    pvk_trap_entry_27[], pvk_trap_entry_28[], pvk_trap_entry_29[], pvk_trap_entry_30[], pvk_trap_entry_31[];

// entry.S's entry per vector; null for NMI, double fault and machine check.
char* const entries[vector_count] = {
    pvk_trap_entry_0,  pvk_trap_entry_1,  nullptr,           pvk_trap_entry_3,  pvk_trap_entry_4,
    pvk_trap_entry_5,  pvk_trap_entry_6,  pvk_trap_entry_7,  nullptr,           pvk_trap_entry_9,
    pvk_trap_entry_10, pvk_trap_entry_11, pvk_trap_entry_12, pvk_trap_entry_13, pvk_trap_entry_14,
    pvk_trap_entry_15, pvk_trap_entry_16, pvk_trap_entry_17, nullptr,           pvk_trap_entry_19,
    pvk_trap_entry_20, pvk_trap_entry_21, pvk_trap_entry_22, pvk_trap_entry_23, pvk_trap_entry_24,
    pvk_trap_entry_25, pvk_trap_entry_26, pvk_trap_entry_27, pvk_trap_entry_28, pvk_trap_entry_29,
    pvk_trap_entry_30, pvk_trap_entry_31,
};

static_assert(sizeof(pvk_trap_frame) == 23 * 8 && offsetof(pvk_trap_frame, fault_address) == 15 * 8 &&
                  offsetof(pvk_trap_frame, rip) == 18 * 8,
              "entry.S pushes 15 registers and fault_address above the vector, error code and iret frame");

pvk_trap_handler handlers[vector_count];

// Points `vector` at its entry in the calling vCPU's table (set_trap_table replaces the entries it
// is given and leaves the others); 0 or the hypercall's error.
long install(unsigned vector) {
    const bool from_user = vector == 3 || vector == 4;
    abi::trap_info table[2] = {{static_cast<std::uint8_t>(vector),
                                static_cast<std::uint8_t>(events_masked | (from_user ? user_may_raise : 0)),
                                static_cast<std::uint16_t>(abi::FLAT_KERNEL_CS),
                                reinterpret_cast<std::uint64_t>(entries[vector])},
                               {}};
    return hypercall::set_trap_table(table);
}

[[noreturn]] void crash(const pvk_trap_frame& frame) {
    char line[160];
    const int length = pvk_snprintf(line, sizeof line,
                                    "pvkit: exception %lu with no handler: error code 0x%lx, rip 0x%lx, fault address 0x%lx\n",
                                    static_cast<unsigned long>(frame.vector), static_cast<unsigned long>(frame.error_code),
                                    static_cast<unsigned long>(frame.rip), static_cast<unsigned long>(frame.fault_address));
    if (length > 0)
        (void)hypercall::console_io(abi::CONSOLEIO_write, static_cast<std::uint32_t>(length), line);
    pvkit::guest::shut_down(abi::ShutdownReason::crash);
}
}  // namespace

extern "C" int pvk_trap_set_handler(unsigned vector, pvk_trap_handler handler) {
    if (vector >= vector_count || entries[vector] == nullptr)
        return -static_cast<int>(abi::XEN_EINVAL);
    if (handler != nullptr) {
        if (const long installed = install(vector); installed != 0)
            return static_cast<int>(installed);
    }
    handlers[vector] = handler;
    return 0;
}

// entry.S calls this with events masked, on the interrupted code's stack.
extern "C" void pvk_trap_dispatch(pvk_trap_frame* frame) {
    if (frame->vector == page_fault)
        frame->fault_address = pvkit::guest::shared_info().vcpu_info[0].arch.cr2;
    const pvk_trap_handler handler = frame->vector < vector_count ? handlers[frame->vector] : nullptr;
    if (handler == nullptr)
        crash(*frame);
    handler(frame);
}
