#include "../domain/domain_fixture.hpp"

#include <hv/pv_vcpu_op.hpp>

namespace pv_test {
namespace {

using namespace domain_test;
using hv::pv::Runstate;
using hv::pv::VcpuTimers;
namespace abi = pvkit::abi;

constexpr std::uint64_t now = 5'000'000'000;

struct VcpuOpFixture : DomainFixture {
    template <class T>
    long vcpu_op(unsigned command, const T& argument, std::uint32_t vcpu = 0) {
        poke(*guest, argument_area, argument);
        return raw_op(command, vcpu);
    }
    long raw_op(unsigned command, std::uint32_t vcpu = 0, std::uint64_t argument = argument_area) {
        hv::pv::VcpuOpCaller caller{domains, guest->domain, 0, *guest->memory, timers, runstate, now};
        return hv::pv::vcpu_op(caller, {static_cast<std::int32_t>(command), vcpu, {argument}});
    }
    std::unique_ptr<TestDomain> guest = make(1, "guest");
    VcpuTimers timers;
    Runstate runstate;
};

TEST_CASE_METHOD(VcpuOpFixture, "vcpu_op: is_up, and enoent for a vCPU the domain does not have", "[pv][vcpu_op]") {
    CHECK(raw_op(abi::VCPUOP_is_up, 0) == 1);
    CHECK(raw_op(abi::VCPUOP_is_up, 1) == 0);  // the second vCPU is not up
    CHECK(raw_op(abi::VCPUOP_is_up, 2) == hv::xen_errno(Errc::enoent));
    CHECK(raw_op(abi::VCPUOP_is_up, 8191) == hv::xen_errno(Errc::enoent));
    CHECK(raw_op(abi::VCPUOP_initialise, 0) == hv::xen_errno(Errc::enosys));
}

TEST_CASE_METHOD(VcpuOpFixture, "vcpu_op: the periodic and single-shot timers of the calling vCPU", "[pv][vcpu_op]") {
    CHECK(raw_op(abi::VCPUOP_stop_periodic_timer) == 0);
    CHECK(timers.period == 0);
    CHECK(vcpu_op(abi::VCPUOP_set_periodic_timer, abi::vcpu_set_periodic_timer{999'999}) == hv::xen_errno(Errc::einval));
    CHECK(vcpu_op(abi::VCPUOP_set_periodic_timer, abi::vcpu_set_periodic_timer{4'000'000}) == 0);
    CHECK(timers.period == 4'000'000);
    CHECK(timers.next_period == now + 4'000'000);

    CHECK(vcpu_op(abi::VCPUOP_set_singleshot_timer, abi::vcpu_set_singleshot_timer{now - 1, abi::VCPU_SSHOTTMR_future}) ==
          hv::xen_errno(Errc::etime));
    CHECK_FALSE(timers.singleshot);
    CHECK(vcpu_op(abi::VCPUOP_set_singleshot_timer, abi::vcpu_set_singleshot_timer{now - 1, 0}) == 0);  // fires at once
    CHECK(timers.singleshot == now - 1);
    CHECK(vcpu_op(abi::VCPUOP_set_singleshot_timer, abi::vcpu_set_singleshot_timer{now + 7, abi::VCPU_SSHOTTMR_future}) == 0);
    CHECK(timers.next_deadline() == now + 7);
    CHECK(raw_op(abi::VCPUOP_stop_singleshot_timer, 1) == hv::xen_errno(Errc::einval));  // not the caller
    CHECK(raw_op(abi::VCPUOP_stop_singleshot_timer) == 0);
    CHECK_FALSE(timers.singleshot);
    CHECK(raw_op(abi::VCPUOP_set_periodic_timer, 0, 0xFFFF'8000'0000'0000) == hv::xen_errno(Errc::efault));
}

TEST_CASE_METHOD(VcpuOpFixture, "vcpu_op: the runstate area is written at once and on every change", "[pv][vcpu_op]") {
    constexpr std::uint64_t area = argument_area + 0x100;
    CHECK(vcpu_op(abi::VCPUOP_register_runstate_memory_area, abi::vcpu_register_runstate_memory_area{{.p = 0xFFFF'8000'0000'0000}}) ==
          hv::xen_errno(Errc::efault));
    REQUIRE(vcpu_op(abi::VCPUOP_register_runstate_memory_area, abi::vcpu_register_runstate_memory_area{{.p = area}}) == 0);
    auto seen = peek<abi::vcpu_runstate_info>(*guest, area);
    CHECK(seen.state == static_cast<std::int32_t>(abi::RUNSTATE_running));
    CHECK(seen.state_entry_time == now);
    CHECK(seen.time[abi::RUNSTATE_running] == now);  // running since boot

    hv::pv::change_runstate(runstate, abi::RUNSTATE_blocked, now + 300);
    guest->domain.vm_assist |= 1u << abi::VMASST_TYPE_runstate_update_flag;
    hv::pv::publish_runstate(runstate, *guest->memory, guest->domain);
    seen = peek<abi::vcpu_runstate_info>(*guest, area);
    CHECK(seen.state == static_cast<std::int32_t>(abi::RUNSTATE_blocked));
    CHECK(seen.state_entry_time == now + 300);  // the update flag is clear again
    CHECK(seen.time[abi::RUNSTATE_running] == now + 300);
    hv::pv::change_runstate(runstate, abi::RUNSTATE_running, now + 1000);
    CHECK(runstate.info.time[abi::RUNSTATE_blocked] == 700);

    REQUIRE(raw_op(abi::VCPUOP_get_runstate_info) == 0);
    CHECK(peek<abi::vcpu_runstate_info>(*guest, argument_area).time[abi::RUNSTATE_blocked] == 700);
}

TEST_CASE_METHOD(VcpuOpFixture, "vcpu_op: register_vcpu_info moves events to a page of the guest's", "[pv][vcpu_op]") {
    const Mfn page = allocate(guest->domain.memory);
    const auto other = make(2, "other");
    const Mfn theirs = allocate(other->domain.memory);
    CHECK(vcpu_op(abi::VCPUOP_register_vcpu_info, abi::vcpu_register_vcpu_info{page.value, 4096 - 63, 0}) ==
          hv::xen_errno(Errc::einval));  // does not fit
    CHECK(vcpu_op(abi::VCPUOP_register_vcpu_info, abi::vcpu_register_vcpu_info{theirs.value, 0, 0}) ==
          hv::xen_errno(Errc::einval));
    CHECK(vcpu_op(abi::VCPUOP_register_vcpu_info, abi::vcpu_register_vcpu_info{guest->l1.value, 0, 0}) ==
          hv::xen_errno(Errc::einval));  // a page table cannot be written by the hypervisor
    CHECK(vcpu_op(abi::VCPUOP_register_vcpu_info, abi::vcpu_register_vcpu_info{page.value, 68, 0}) ==
          hv::xen_errno(Errc::einval));  // misaligned
    guest->domain.vcpus[1].online = true;
    CHECK(vcpu_op(abi::VCPUOP_register_vcpu_info, abi::vcpu_register_vcpu_info{page.value, 0, 0}, 1) ==
          hv::xen_errno(Errc::einval));  // another vCPU, running
    guest->domain.vcpus[1].online = false;
    shared_info(*guest).vcpu_info[0].evtchn_upcall_mask = 1;
    REQUIRE(vcpu_op(abi::VCPUOP_register_vcpu_info, abi::vcpu_register_vcpu_info{page.value, 64, 0}) == 0);
    const auto& moved = *reinterpret_cast<abi::vcpu_info*>(platform.map(page) + 64);
    CHECK(guest->domain.events->vcpus[0].info == &moved);
    CHECK(moved.evtchn_upcall_mask == 1);  // copied
    CHECK(moved.evtchn_upcall_pending == 1);  // flagged: nothing pending is lost
    CHECK(frames.info(page).type == hv::mm::PageType::writable);
    CHECK(vcpu_op(abi::VCPUOP_register_vcpu_info, abi::vcpu_register_vcpu_info{page.value, 128, 0}) ==
          hv::xen_errno(Errc::einval));  // once only
    require_invariants({guest.get(), other.get()});

    const std::uint64_t free_before = frames.free_frames();
    REQUIRE(destroy(*guest));
    CHECK(frames.free_frames() > free_before);
    CHECK(frames.info(page).owner == DomId{abi::DOMID_INVALID});  // released with the domain
}

}  // namespace
}  // namespace pv_test
