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

TEST_CASE("hypercall: typed guest stubs exist for every sub-op with an argument", "[hypercall]") {
    // Taking the address forces each stub's inline assembly to be emitted and linked.
    const void* stubs[] = {reinterpret_cast<const void*>(&pvkit::hypercall::evtchnop_send),
                           reinterpret_cast<const void*>(&pvkit::hypercall::schedop_shutdown),
                           reinterpret_cast<const void*>(&pvkit::hypercall::mmu_update),
                           reinterpret_cast<const void*>(&pvkit::hypercall::iret)};
    for (const void* stub : stubs)
        CHECK(stub != nullptr);
}

// The stubs call into the hypercall page that a domain builder fills; on the host it is never called.
extern "C" char pvk_hypercall_page[4096];
char pvk_hypercall_page[4096];
