#include <catch2/catch.hpp>

#include <hv/hypercall_dispatch.hpp>

namespace abi = pvkit::abi;
using hv::HypercallRegisters;
namespace args = hv::hypercall_args;

namespace {
struct Caller {
    int id = 0;
};

// Implements two hypercalls and records what reached them.
struct RecordingHandlers {
    args::mmu_update last_mmu_update{};
    args::sched_op last_sched_op{};
    args::set_timer_op last_set_timer_op{};
    args::console_io last_console_io{};
    int calls = 0;
    const Caller* last_caller = nullptr;

    long mmu_update(Caller& caller, const args::mmu_update& a) {
        ++calls;
        last_caller = &caller;
        last_mmu_update = a;
        return 7;
    }
    long sched_op(Caller&, const args::sched_op& a) {
        ++calls;
        last_sched_op = a;
        return 0;
    }
    long set_timer_op(Caller&, const args::set_timer_op& a) {
        last_set_timer_op = a;
        return 0;
    }
    long console_io(Caller&, const args::console_io& a) {
        last_console_io = a;
        return 0;
    }
};

constexpr long enosys = -static_cast<long>(abi::XEN_ENOSYS);
}  // namespace

TEST_CASE("hypercall: dispatch decodes registers into the typed arguments of the hypercall", "[hypercall]") {
    RecordingHandlers handlers;
    Caller caller;
    const HypercallRegisters regs{abi::HYPERVISOR_mmu_update, {0xffff880000001000, 3, 0x2000, 0x7ff0, 99}};
    CHECK(hv::dispatch_hypercall(handlers, caller, regs) == 7);
    CHECK(handlers.calls == 1);
    CHECK(handlers.last_caller == &caller);
    CHECK(handlers.last_mmu_update.req.address == 0xffff880000001000);
    CHECK(handlers.last_mmu_update.count == 3);
    CHECK(handlers.last_mmu_update.success_count.address == 0x2000);
    CHECK(handlers.last_mmu_update.foreigndom == abi::DOMID_SELF);
}

TEST_CASE("hypercall: dispatch truncates narrow arguments as Xen's C prototypes do", "[hypercall][hostile]") {
    RecordingHandlers handlers;
    Caller caller;
    // Garbage in the upper halves must not leak into 32-bit arguments.
    const HypercallRegisters mmu{abi::HYPERVISOR_mmu_update, {0, 0xdead'0000'0000'0005, 0, 0xffff'ffff'0000'0001, 0}};
    hv::dispatch_hypercall(handlers, caller, mmu);
    CHECK(handlers.last_mmu_update.count == 5);
    CHECK(handlers.last_mmu_update.foreigndom == 1);

    const HypercallRegisters sched{abi::HYPERVISOR_sched_op, {0x1'ffff'fffe, 0x1234, 0, 0, 0}};
    hv::dispatch_hypercall(handlers, caller, sched);
    CHECK(handlers.last_sched_op.cmd == -2);
    CHECK(handlers.last_sched_op.arg.address == 0x1234);

    // Xen's set_timer_op takes a signed s_time_t; console_io an unsigned int command.
    hv::dispatch_hypercall(handlers, caller, HypercallRegisters{abi::HYPERVISOR_set_timer_op, {~std::uint64_t{0}}});
    CHECK(handlers.last_set_timer_op.timeout == -1);
    hv::dispatch_hypercall(handlers, caller,
                           HypercallRegisters{abi::HYPERVISOR_console_io, {0xdead'ffff'ffff, 3, 0x5000}});
    CHECK(handlers.last_console_io.cmd == 0xffff'ffffu);
    CHECK(handlers.last_console_io.count == 3);
}

TEST_CASE("hypercall: hypercalls without a handler and unknown numbers are enosys", "[hypercall][hostile]") {
    RecordingHandlers handlers;
    Caller caller;
    for (const std::uint64_t number : {std::uint64_t{abi::HYPERVISOR_event_channel_op}, std::uint64_t{6},
                                       std::uint64_t{64}, std::uint64_t{0xffff'ffff'ffff'ffff}}) {
        INFO("hypercall " << number);
        CHECK(hv::dispatch_hypercall(handlers, caller, HypercallRegisters{number, {}}) == enosys);
    }
    CHECK(handlers.calls == 0);
}

TEST_CASE("hypercall: hypercall names come from the spec", "[hypercall]") {
    CHECK(hv::hypercall_name(abi::HYPERVISOR_mmu_update) == "mmu_update");
    CHECK(hv::hypercall_name(23) == "iret");
    CHECK(hv::hypercall_name(6).empty());  // sched_op_compat: not in the subset
    CHECK(hv::hypercall_name(~std::uint64_t{0}).empty());
    STATIC_REQUIRE(hv::hypercall_table_size == 34);
}
