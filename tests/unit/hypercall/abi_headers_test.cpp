// The guest headers compile as C++ next to each other, and agree with each other and the hypervisor's.
#include <catch2/catch.hpp>

#include <hv/hypercall_dispatch.hpp>
#include <pvkit/abi.hpp>
#include <pvkit/hypercalls.hpp>
#include <pvkit/xen-abi.h>

namespace abi = pvkit::abi;

TEST_CASE("hypercall: the C and C++ guest headers describe the same ABI", "[hypercall]") {
    STATIC_REQUIRE(sizeof(abi::start_info) == sizeof(pvk_start_info));
    STATIC_REQUIRE(sizeof(abi::shared_info) == sizeof(pvk_shared_info));
    STATIC_REQUIRE(sizeof(abi::vcpu_guest_context) == sizeof(pvk_vcpu_guest_context));
    STATIC_REQUIRE(offsetof(abi::vcpu_info, time) == offsetof(pvk_vcpu_info, time));
    STATIC_REQUIRE(abi::HYPERVISOR_event_channel_op == PVK_HYPERVISOR_event_channel_op);
    STATIC_REQUIRE(abi::EVTCHNOP_send == PVK_EVTCHNOP_send);
    STATIC_REQUIRE(static_cast<int>(abi::ShutdownReason::poweroff) == PVK_SHUTDOWN_poweroff);
}

TEST_CASE("hypercall: guest handles hold a guest address in 8 bytes", "[hypercall]") {
    STATIC_REQUIRE(sizeof(abi::guest_handle<abi::mmu_update>) == 8);
    abi::mmu_update update{};
    const auto handle = abi::guest_handle<abi::mmu_update>::from(&update);
    CHECK(handle.address == reinterpret_cast<std::uintptr_t>(&update));
}

// Filled by fake_hypercall_page.S.
extern "C" struct {
    std::uint64_t number, rdi, rsi, rdx, r10, r8;
} recorded_hypercall;
decltype(recorded_hypercall) recorded_hypercall;

TEST_CASE("hypercall: C++ stubs put the number and arguments in Xen's registers", "[hypercall]") {
    abi::mmu_update updates[2]{};
    std::uint32_t done = 0;
    CHECK(pvkit::hypercall::mmu_update(updates, 2, &done, abi::DOMID_SELF) == 0x1000 + abi::HYPERVISOR_mmu_update);
    CHECK(recorded_hypercall.number == abi::HYPERVISOR_mmu_update);
    CHECK(recorded_hypercall.rdi == reinterpret_cast<std::uintptr_t>(updates));
    CHECK(recorded_hypercall.rsi == 2);
    CHECK(recorded_hypercall.rdx == reinterpret_cast<std::uintptr_t>(&done));
    CHECK(recorded_hypercall.r10 == abi::DOMID_SELF);

    pvkit::hypercall::set_timer_op(-5);
    CHECK(recorded_hypercall.number == abi::HYPERVISOR_set_timer_op);
    CHECK(recorded_hypercall.rdi == static_cast<std::uint64_t>(-5));
}

TEST_CASE("hypercall: sub-op wrappers pass the command first and the typed argument in its place", "[hypercall]") {
    abi::evtchn_send send{7};
    CHECK(pvkit::hypercall::evtchnop_send(&send) == 0x1000 + abi::HYPERVISOR_event_channel_op);
    CHECK(recorded_hypercall.number == abi::HYPERVISOR_event_channel_op);
    CHECK(recorded_hypercall.rdi == abi::EVTCHNOP_send);
    CHECK(recorded_hypercall.rsi == reinterpret_cast<std::uintptr_t>(&send));

    abi::vcpu_set_singleshot_timer timer{};
    pvkit::hypercall::vcpuop_set_singleshot_timer(3, &timer);
    CHECK(recorded_hypercall.number == abi::HYPERVISOR_vcpu_op);
    CHECK(recorded_hypercall.rdi == abi::VCPUOP_set_singleshot_timer);
    CHECK(recorded_hypercall.rsi == 3);
    CHECK(recorded_hypercall.rdx == reinterpret_cast<std::uintptr_t>(&timer));
}

TEST_CASE("hypercall: C stubs agree with the C++ ones", "[hypercall]") {
    char text[] = "hi";
    CHECK(pvk_consoleio_write(2, text) == 0x1000 + PVK_HYPERVISOR_console_io);
    CHECK(recorded_hypercall.rdi == PVK_CONSOLEIO_write);
    CHECK(recorded_hypercall.rsi == 2);
    CHECK(recorded_hypercall.rdx == reinterpret_cast<std::uintptr_t>(text));

    CHECK(pvk_schedop_yield() == 0x1000 + PVK_HYPERVISOR_sched_op);
    CHECK(recorded_hypercall.rdi == PVK_SCHEDOP_yield);
    CHECK(recorded_hypercall.rsi == 0);
}
