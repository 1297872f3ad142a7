// The exception handlers (pvkit/traps.h): the calling vCPU's trap table, rebuilt whole from the
// handlers at each change, since set_trap_table only adds entries (a null table clears them all).
#include <guest/start.hpp>
#include <pvkit/hypercalls.hpp>
#include <pvkit/traps.h>

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

pvk_trap_handler handlers[vector_count];

// The table for `wanted` (a handler per vector, or null), ended by a null entry; 0 or the
// hypercall's error.
long install(const pvk_trap_handler (&wanted)[vector_count]) {
    abi::trap_info table[vector_count + 1] = {};
    unsigned count = 0;
    for (unsigned vector = 0; vector < vector_count; ++vector) {
        if (wanted[vector] == nullptr)
            continue;
        const bool from_user = vector == 3 || vector == 4;
        table[count++] = {static_cast<std::uint8_t>(vector),
                          static_cast<std::uint8_t>(events_masked | (from_user ? user_may_raise : 0)),
                          static_cast<std::uint16_t>(abi::FLAT_KERNEL_CS), reinterpret_cast<std::uint64_t>(entries[vector])};
    }
    // set_trap_table only adds entries: a null table clears the old ones first.
    if (const long cleared = hypercall::set_trap_table(nullptr); cleared != 0)
        return cleared;
    return count == 0 ? 0 : hypercall::set_trap_table(table);
}
}  // namespace

extern "C" int pvk_trap_set_handler(unsigned vector, pvk_trap_handler handler) {
    if (vector >= vector_count || entries[vector] == nullptr)
        return -static_cast<int>(abi::XEN_EINVAL);
    pvk_trap_handler wanted[vector_count];
    for (unsigned i = 0; i < vector_count; ++i)
        wanted[i] = handlers[i];
    wanted[vector] = handler;
    if (const long installed = install(wanted); installed != 0) {
        (void)install(handlers);  // the table as it was
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
    if (handler == nullptr) {  // taken away meanwhile: as if there had been none
        abi::sched_shutdown request{abi::SHUTDOWN_crash};
        for (;;)
            hypercall::schedop_shutdown(&request);
    }
    handler(frame);
}
