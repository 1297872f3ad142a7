#include "domain_fixture.hpp"

namespace domain_test {
namespace {

TEST_CASE_METHOD(DomainFixture, "SCHEDOP_block enables events and blocks until one arrives", "[domain][sched]") {
    auto guest = make(1, "guest");
    abi::vcpu_info& info = shared_info(*guest).vcpu_info[0];
    CHECK(info.evtchn_upcall_mask == 1);  // a new domain starts with events masked

    CHECK(call(*guest, abi::HYPERVISOR_sched_op, {abi::SCHEDOP_block, 0}) == 0);
    CHECK(info.evtchn_upcall_mask == 0);
    CHECK(guest->vcpus[0].blocked);
    CHECK_FALSE(guest->domain.runnable(0));

    // An IPI to itself (from vCPU 1, say) wakes it.
    abi::evtchn_bind_ipi bind{0, 0};
    REQUIRE(op(*guest, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_bind_ipi, bind) == 0);
    machine.kicks.clear();
    REQUIRE(domains.event_channels().send(*guest->domain.events, Port{bind.port}));
    CHECK_FALSE(guest->vcpus[0].blocked);
    CHECK(guest->domain.runnable(0));
    CHECK(machine.kicks == std::vector<FakeDomainPlatform::VcpuEvent>{{1, 0}});

    // With an upcall already pending it does not block at all.
    CHECK(call(*guest, abi::HYPERVISOR_sched_op, {abi::SCHEDOP_block, 0}) == 0);
    CHECK_FALSE(guest->vcpus[0].blocked);
}

TEST_CASE_METHOD(DomainFixture, "SCHEDOP_yield asks the platform to schedule others", "[domain][sched]") {
    auto guest = make(1, "guest");
    CHECK(call(*guest, abi::HYPERVISOR_sched_op, {abi::SCHEDOP_yield, 0}, 1) == 0);
    CHECK(machine.yields == std::vector<FakeDomainPlatform::VcpuEvent>{{1, 1}});
}

struct PollFixture : DomainFixture {
    PollFixture() : guest{make(1, "guest")} {
        for (abi::evtchn_port_t& port : ports) {
            abi::evtchn_bind_ipi bind{0, 0};
            REQUIRE(op(*guest, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_bind_ipi, bind) == 0);
            port = bind.port;
            // Masked, so that raising it sets it pending without an upcall: poll's own wake-up.
            shared_info(*guest).evtchn_mask[0] |= 1ull << port;
        }
    }
    static constexpr std::uint64_t ports_address = argument_area + 0x1000;
    long poll(std::initializer_list<abi::evtchn_port_t> polled, std::uint64_t timeout = 0) {
        for (std::size_t i = 0; i < polled.size(); ++i)
            poke(*guest, ports_address + 4 * i, std::data(polled)[i]);
        abi::sched_poll request{{ports_address}, static_cast<std::uint32_t>(polled.size()), timeout};
        return op(*guest, abi::HYPERVISOR_sched_op, abi::SCHEDOP_poll, request);
    }
    void raise(abi::evtchn_port_t port) { REQUIRE(domains.event_channels().send(*guest->domain.events, Port{port})); }

    std::unique_ptr<TestDomain> guest;
    std::array<abi::evtchn_port_t, 3> ports{};
};

TEST_CASE_METHOD(PollFixture, "SCHEDOP_poll on one port sleeps until that port is pending", "[domain][sched][poll]") {
    CHECK(poll({ports[1]}, 5'000'000) == 0);
    CHECK(guest->vcpus[0].blocked);
    CHECK(machine.timeouts == std::vector<std::tuple<abi::domid_t, std::uint32_t, std::uint64_t>>{{1, 0, 5'000'000}});
    raise(ports[0]);
    CHECK(guest->vcpus[0].blocked);  // not the polled port
    raise(ports[1]);
    CHECK_FALSE(guest->vcpus[0].blocked);
    CHECK_FALSE(guest->vcpus[0].polling);
}

TEST_CASE_METHOD(PollFixture, "SCHEDOP_poll on several ports wakes on any port; the timeout wakes it too",
                 "[domain][sched][poll]") {
    CHECK(poll({ports[1], ports[2]}) == 0);
    CHECK(machine.timeouts.empty());
    raise(ports[0]);
    CHECK_FALSE(guest->vcpus[0].blocked);  // it re-checks its ports itself

    CHECK(poll({ports[1]}, 1'000) == 0);
    CHECK(guest->vcpus[0].blocked);
    REQUIRE(machine.timeouts.size() == 1);
    domains.poll_timed_out(DomId{1}, 0);  // the platform's timer fired
    CHECK_FALSE(guest->vcpus[0].blocked);
    CHECK_FALSE(guest->vcpus[0].polling);
}

TEST_CASE_METHOD(PollFixture, "a poll timeout that fires late wakes nothing", "[domain][sched][poll]") {
    CHECK(poll({ports[1]}, 1'000) == 0);
    raise(ports[1]);  // woken by its port before the timer
    CHECK(call(*guest, abi::HYPERVISOR_sched_op, {abi::SCHEDOP_block, 0}) == 0);
    REQUIRE(guest->vcpus[0].blocked);
    domains.poll_timed_out(DomId{1}, 0);  // the old timer: not a wake-up for the block
    CHECK(guest->vcpus[0].blocked);
    domains.poll_timed_out(DomId{1}, 7);   // no such vCPU
    domains.poll_timed_out(DomId{42}, 0);  // no such domain (destroyed meanwhile)
    CHECK(guest->vcpus[0].blocked);
}

TEST_CASE_METHOD(PollFixture, "SCHEDOP_poll returns at once when a port is already pending, and refuses bad ports",
                 "[domain][sched][poll][hostile]") {
    raise(ports[2]);
    CHECK(poll({ports[0], ports[2]}) == 0);
    CHECK_FALSE(guest->vcpus[0].blocked);

    CHECK(poll({ports[0], 64}) == error(Errc::einval));
    CHECK(poll({ports[0], 0xFFFF'FFFF}) == error(Errc::einval));
    CHECK_FALSE(guest->vcpus[0].blocked);
    CHECK_FALSE(guest->vcpus[0].polling);

    abi::sched_poll too_many{{ports_address}, 129, 0};
    CHECK(op(*guest, abi::HYPERVISOR_sched_op, abi::SCHEDOP_poll, too_many) == error(Errc::einval));
    abi::sched_poll unmapped{{free_area}, 1, 0};
    CHECK(op(*guest, abi::HYPERVISOR_sched_op, abi::SCHEDOP_poll, unmapped) == error(Errc::efault));
    abi::sched_poll outside{{abi::HYPERVISOR_VIRT_START}, 1, 0};
    CHECK(op(*guest, abi::HYPERVISOR_sched_op, abi::SCHEDOP_poll, outside) == error(Errc::efault));
    CHECK_FALSE(guest->vcpus[0].blocked);
    CHECK(machine.timeouts.empty());
}

TEST_CASE_METHOD(DomainFixture, "SCHEDOP_shutdown, shutdown_code and remote_shutdown", "[domain][sched][shutdown]") {
    auto control = make(0, "control", true);
    auto guest = make(1, "guest");
    auto other = make(2, "other");

    SECTION("a guest shuts itself down with its reason, of which Xen keeps 8 bits") {
        abi::sched_shutdown request{0x100 | abi::SHUTDOWN_reboot};
        CHECK(op(*guest, abi::HYPERVISOR_sched_op, abi::SCHEDOP_shutdown, request) == 0);
        CHECK(guest->domain.state == DomainState::shutdown);
        CHECK(guest->domain.shutdown_reason == abi::SHUTDOWN_reboot);
    }
    SECTION("a reason given earlier with shutdown_code is the one reported") {
        abi::sched_shutdown code{abi::SHUTDOWN_crash};
        CHECK(op(*guest, abi::HYPERVISOR_sched_op, abi::SCHEDOP_shutdown_code, code) == 0);
        CHECK(guest->domain.state == DomainState::running);
        abi::sched_shutdown later{abi::SHUTDOWN_reboot};
        CHECK(op(*guest, abi::HYPERVISOR_sched_op, abi::SCHEDOP_shutdown_code, later) == 0);  // the first stays
        abi::sched_shutdown request{abi::SHUTDOWN_poweroff};
        CHECK(op(*guest, abi::HYPERVISOR_sched_op, abi::SCHEDOP_shutdown, request) == 0);
        CHECK(guest->domain.shutdown_reason == abi::SHUTDOWN_crash);
    }
    SECTION("only a privileged domain shuts another down") {
        abi::sched_remote_shutdown request{2, abi::SHUTDOWN_reboot};
        CHECK(op(*guest, abi::HYPERVISOR_sched_op, abi::SCHEDOP_remote_shutdown, request) == error(Errc::eperm));
        CHECK(other->domain.state == DomainState::running);
        CHECK(op(*control, abi::HYPERVISOR_sched_op, abi::SCHEDOP_remote_shutdown, request) == 0);
        CHECK(other->domain.state == DomainState::shutdown);
        CHECK(other->domain.shutdown_reason == abi::SHUTDOWN_reboot);
        CHECK(guest->domain.state == DomainState::running);
        abi::sched_remote_shutdown nobody{77, abi::SHUTDOWN_reboot};
        CHECK(op(*control, abi::HYPERVISOR_sched_op, abi::SCHEDOP_remote_shutdown, nobody) == error(Errc::esrch));
    }
    CHECK(control->domain.state == DomainState::running);
}

TEST_CASE_METHOD(DomainFixture, "vm_assist turns the writable page-table assist on and off", "[domain][vm_assist]") {
    auto guest = make(1, "guest");
    CHECK(call(*guest, abi::HYPERVISOR_vm_assist, {abi::VMASST_CMD_enable, abi::VMASST_TYPE_writable_pagetables}) == 0);
    CHECK(guest->domain.memory.writable_pagetables);
    CHECK(call(*guest, abi::HYPERVISOR_vm_assist, {abi::VMASST_CMD_enable, abi::VMASST_TYPE_4gb_segments}) == 0);
    CHECK(call(*guest, abi::HYPERVISOR_vm_assist, {abi::VMASST_CMD_disable, abi::VMASST_TYPE_writable_pagetables}) == 0);
    CHECK_FALSE(guest->domain.memory.writable_pagetables);
    CHECK(guest->domain.vm_assist == (std::uint64_t{1} << abi::VMASST_TYPE_4gb_segments));
    CHECK(call(*guest, abi::HYPERVISOR_vm_assist, {abi::VMASST_CMD_enable, abi::VMASST_TYPE_runstate_update_flag}) == 0);
    CHECK(call(*guest, abi::HYPERVISOR_vm_assist, {abi::VMASST_CMD_disable, abi::VMASST_TYPE_runstate_update_flag}) == 0);
    // Assists Xen has but we do not honour are refused, so that the guest falls back.
    for (std::uint64_t type : std::initializer_list<std::uint64_t>{
             abi::VMASST_TYPE_architectural_iopl, abi::VMASST_TYPE_m2p_strict, 6, 31, 63, 64, 0xFFFF'FFFF})
        CHECK(call(*guest, abi::HYPERVISOR_vm_assist, {abi::VMASST_CMD_enable, type}) == error(Errc::einval));
    CHECK(guest->domain.vm_assist == (std::uint64_t{1} << abi::VMASST_TYPE_4gb_segments));
}

TEST_CASE_METHOD(DomainFixture, "xen_version answers what a guest asks at boot", "[domain][xen_version]") {
    auto guest = make(1, "guest");
    auto control = make(0, "control", true);
    CHECK(call(*guest, abi::HYPERVISOR_xen_version, {abi::XENVER_version}) == ((4 << 16) | 17));
    CHECK(call(*guest, abi::HYPERVISOR_xen_version, {abi::XENVER_pagesize}) == 4096);
    CHECK(call(*guest, abi::HYPERVISOR_xen_version, {abi::XENVER_pagesize, argument_area}) == error(Errc::einval));

    CHECK(call(*guest, abi::HYPERVISOR_xen_version, {abi::XENVER_extraversion, argument_area}) == 0);
    CHECK(std::string{peek<std::array<char, 16>>(*guest, argument_area).data()} == ".0-pvkit");
    CHECK(call(*guest, abi::HYPERVISOR_xen_version, {abi::XENVER_capabilities, argument_area}) == 0);
    CHECK(std::string{peek<std::array<char, 1024>>(*guest, argument_area).data()} == "xen-3.0-x86_64 ");
    CHECK(call(*guest, abi::HYPERVISOR_xen_version, {abi::XENVER_platform_parameters, argument_area}) == 0);
    CHECK(peek<std::uint64_t>(*guest, argument_area) == abi::HYPERVISOR_VIRT_START);
    CHECK(call(*guest, abi::HYPERVISOR_xen_version, {abi::XENVER_compile_info, argument_area}) == 0);
    CHECK(std::string{peek<abi::xen_compile_info>(*guest, argument_area).compile_by} == "pvkit");

    // Linux's xen_setup_features panics in a PV guest unless both of these are set.
    const std::uint32_t pv_features =
        (1u << abi::XENFEAT_mmu_pt_update_preserve_ad) | (1u << abi::XENFEAT_gnttab_map_avail_bits);
    poke(*guest, argument_area, abi::xen_feature_info{0, 0xFFFF'FFFF});
    CHECK(call(*guest, abi::HYPERVISOR_xen_version, {abi::XENVER_get_features, argument_area}) == 0);
    CHECK(peek<abi::xen_feature_info>(*guest, argument_area).submap == pv_features);
    poke(*control, argument_area, abi::xen_feature_info{0, 0});
    CHECK(call(*control, abi::HYPERVISOR_xen_version, {abi::XENVER_get_features, argument_area}) == 0);
    CHECK(peek<abi::xen_feature_info>(*control, argument_area).submap == (pv_features | (1u << abi::XENFEAT_dom0)));
    poke(*guest, argument_area, abi::xen_feature_info{1, 0x1234});
    CHECK(call(*guest, abi::HYPERVISOR_xen_version, {abi::XENVER_get_features, argument_area}) == error(Errc::einval));
    CHECK(peek<abi::xen_feature_info>(*guest, argument_area).submap == 0x1234);

    // The hypervisor's command line and build id are the control domain's to read.
    CHECK(call(*guest, abi::HYPERVISOR_xen_version, {abi::XENVER_commandline, argument_area}) == 0);
    CHECK(std::string{peek<std::array<char, 1024>>(*guest, argument_area).data()} == "<denied>");
    CHECK(call(*control, abi::HYPERVISOR_xen_version, {abi::XENVER_commandline, argument_area}) == 0);
    CHECK(std::string{peek<std::array<char, 1024>>(*control, argument_area).data()}.empty());
    CHECK(call(*guest, abi::HYPERVISOR_xen_version, {abi::XENVER_build_id, argument_area}) == error(Errc::eperm));
    CHECK(call(*control, abi::HYPERVISOR_xen_version, {abi::XENVER_build_id, argument_area}) == error(Errc::enodata));
}

}  // namespace
}  // namespace domain_test
