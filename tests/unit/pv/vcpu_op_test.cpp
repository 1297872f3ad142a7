#include "../domain/domain_fixture.hpp"

#include <hv/pv_vcpu_op.hpp>

#include <cstring>

namespace pv_test {
namespace {

using namespace domain_test;
using hv::pv::Runstate;
using hv::pv::VcpuTimers;
namespace abi = pvkit::abi;

constexpr std::uint64_t now = 5'000'000'000;

// The embedder's side of two vCPUs: their timers, runstates and the starts VCPUOP_initialise gave.
struct TwoVcpus final : hv::pv::VcpuStates {
    VcpuTimers& timers(std::uint32_t vcpu) override { return timer[vcpu]; }
    Runstate& runstate(std::uint32_t vcpu) override { return runstates[vcpu]; }
    void start(std::uint32_t vcpu, const hv::pv::VcpuStart& given) override { starts.emplace_back(vcpu, given); }

    std::array<VcpuTimers, 2> timer;
    std::array<Runstate, 2> runstates;
    std::vector<std::pair<std::uint32_t, hv::pv::VcpuStart>> starts;
};

struct VcpuOpFixture : DomainFixture {
    template <class T>
    long vcpu_op(unsigned command, const T& argument, std::uint32_t vcpu = 0) {
        poke(*guest, argument_area, argument);
        return raw_op(command, vcpu);
    }
    long raw_op(unsigned command, std::uint32_t vcpu = 0, std::uint64_t argument = argument_area) {
        hv::pv::VcpuOpCaller caller{domains, guest->domain, 0, *guest->memory, vcpus, now};
        return hv::pv::vcpu_op(caller, {static_cast<std::int32_t>(command), vcpu, {argument}});
    }
    std::unique_ptr<TestDomain> guest = make(1, "guest");
    TwoVcpus vcpus;
    VcpuTimers& timers = vcpus.timer[0];
    Runstate& runstate = vcpus.runstates[0];
};

TEST_CASE_METHOD(VcpuOpFixture, "vcpu_op: is_up, and enoent for a vCPU the domain does not have", "[pv][vcpu_op]") {
    CHECK(raw_op(abi::VCPUOP_is_up, 0) == 1);
    CHECK(raw_op(abi::VCPUOP_is_up, 1) == 0);  // the second vCPU is not up
    CHECK(raw_op(abi::VCPUOP_is_up, 2) == hv::xen_errno(Errc::enoent));
    CHECK(raw_op(abi::VCPUOP_is_up, 8191) == hv::xen_errno(Errc::enoent));
    CHECK(raw_op(abi::VCPUOP_up, 2) == hv::xen_errno(Errc::enoent));
    CHECK(raw_op(13, 0) == hv::xen_errno(Errc::enosys));  // VCPUOP_register_vcpu_time_memory_area: not in the subset
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

// A context for vCPU 1 as a guest kernel starts a CPU: same page tables, own stack, no GDT.
abi::vcpu_guest_context secondary_context(Mfn l4) {
    abi::vcpu_guest_context context{};
    context.flags = abi::VGCF_in_kernel;
    context.user_regs.rip = 0x401000;
    context.user_regs.rsp = 0x402000;
    context.user_regs.rdi = 7;
    context.user_regs.cs = abi::FLAT_KERNEL_CS64 & ~3u;  // RPL 0, as Linux writes it: runs at RPL 3
    context.user_regs.ss = abi::FLAT_KERNEL_SS;
    context.user_regs.rflags = 0x3002;                    // IOPL 3: the virtual IOPL, not the CPU's
    context.trap_ctxt[14].address = 0x403000;
    context.trap_ctxt[14].cs = abi::FLAT_KERNEL_CS64;
    context.kernel_sp = 0x404000;
    context.event_callback_eip = 0x405000;
    context.gs_base_kernel = 0x406000;
    context.ctrlreg[3] = l4.value << 12;
    return context;
}

TEST_CASE_METHOD(VcpuOpFixture, "vcpu_op: initialise, up and down bring a second vCPU into the domain and out", "[pv][vcpu_op]") {
    const Mfn l4 = *guest->vcpu_memory[0].kernel_base;
    const std::uint32_t l4_types = frames.info(l4).type_count;
    CHECK(raw_op(abi::VCPUOP_up, 1) == hv::xen_errno(Errc::einval));  // not initialised
    REQUIRE(vcpu_op(abi::VCPUOP_initialise, secondary_context(l4), 1) == 0);
    REQUIRE(vcpus.starts.size() == 1);
    const auto& [vcpu, start] = vcpus.starts[0];
    CHECK(vcpu == 1);
    CHECK(start.registers.rip == 0x401000);
    CHECK(start.registers.rsp == 0x402000);
    CHECK(start.registers.rdi == 7);
    CHECK(start.registers.cs == abi::FLAT_KERNEL_CS64);
    CHECK(start.registers.rflags == 0x202);
    CHECK(start.pv.iopl == 3);  // the virtual IOPL, as Xen keeps it
    CHECK(start.pv.kernel_mode);
    CHECK(start.pv.traps[14].address == 0x403000);
    CHECK(start.pv.traps[14].vector == 14);
    CHECK(start.pv.kernel_sp == 0x404000);
    CHECK(start.pv.event_callback == 0x405000);
    CHECK(start.bases.gs_kernel == 0x406000);
    CHECK(guest->vcpu_memory[1].kernel_base == l4);
    std::uint32_t mxcsr = 0;
    std::memcpy(&mxcsr, start.fpu.data() + 24, sizeof mxcsr);
    CHECK(mxcsr == 0x1F80);  // no VGCF_i387_valid: the initial FPU state
    CHECK(frames.info(l4).type_count == l4_types + 1);
    CHECK(raw_op(abi::VCPUOP_is_up, 1) == 0);  // initialised, still down
    CHECK(vcpu_op(abi::VCPUOP_initialise, secondary_context(l4), 1) == hv::xen_errno(Errc::eexist));
    CHECK(vcpus.starts.size() == 1);

    machine.kicks.clear();
    REQUIRE(raw_op(abi::VCPUOP_up, 1) == 0);
    CHECK(raw_op(abi::VCPUOP_is_up, 1) == 1);
    CHECK(guest->domain.runnable(1));
    CHECK(machine.kicks.size() == 1);
    CHECK(vcpus.runstates[1].info.state == static_cast<std::int32_t>(abi::RUNSTATE_runnable));
    require_invariants({guest.get()});

    REQUIRE(raw_op(abi::VCPUOP_down, 1) == 0);
    CHECK(raw_op(abi::VCPUOP_is_up, 1) == 0);
    CHECK_FALSE(guest->domain.runnable(1));
    CHECK(vcpus.runstates[1].info.state == static_cast<std::int32_t>(abi::RUNSTATE_offline));
    CHECK(guest->domain.state == hv::domain::DomainState::running);
    // Taken down while blocked, it comes back blocked: only an event makes it runnable.
    guest->domain.vcpus[1].blocked = true;
    REQUIRE(raw_op(abi::VCPUOP_up, 1) == 0);
    CHECK_FALSE(guest->domain.runnable(1));
    CHECK(vcpus.runstates[1].info.state == static_cast<std::int32_t>(abi::RUNSTATE_blocked));
    REQUIRE(raw_op(abi::VCPUOP_down, 1) == 0);
    REQUIRE(raw_op(abi::VCPUOP_down, 0) == 0);  // the last one up: the domain powers off, as on Xen
    CHECK(guest->domain.state == hv::domain::DomainState::shutdown);
    CHECK(guest->domain.shutdown_reason == abi::SHUTDOWN_poweroff);

    const std::uint64_t free_before = frames.free_frames();
    REQUIRE(destroy(*guest));
    CHECK(frames.free_frames() > free_before);
    CHECK(frames.info(l4).owner == DomId{abi::DOMID_INVALID});  // vCPU 1's base went with the domain
}

TEST_CASE_METHOD(VcpuOpFixture, "vcpu_op: initialise refuses what Xen refuses and changes nothing", "[pv][vcpu_op][hostile]") {
    const Mfn l4 = *guest->vcpu_memory[0].kernel_base;
    const std::uint32_t l4_types = frames.info(l4).type_count;
    const auto other = make(2, "other");
    const Mfn theirs = *other->vcpu_memory[0].kernel_base;
    const auto refused = [&](const abi::vcpu_guest_context& context, Errc error) {
        CHECK(vcpu_op(abi::VCPUOP_initialise, context, 1) == hv::xen_errno(error));
        CHECK(vcpus.starts.empty());
        CHECK_FALSE(guest->domain.vcpus[1].initialised);
        CHECK_FALSE(guest->vcpu_memory[1].kernel_base);
        CHECK_FALSE(guest->vcpu_memory[1].user_base);
        CHECK(guest->vcpu_memory[1].gdt_entries == 0);
        CHECK(frames.info(l4).type_count == l4_types);
        require_invariants({guest.get(), other.get()});
    };
    const auto with = [&](auto change) {
        abi::vcpu_guest_context context = secondary_context(l4);
        change(context);
        return context;
    };
    refused(with([](auto& c) { c.user_regs.rip = 0x0000'8000'0000'0000; }), Errc::einval);
    refused(with([](auto& c) { c.trap_ctxt[3].address = 0x8000'0000'0000'0000; }), Errc::einval);
    refused(with([](auto& c) { c.failsafe_callback_eip = 0x0001'0000'0000'0000; }), Errc::einval);
    refused(with([](auto& c) { c.gdt_ents = abi::FIRST_RESERVED_GDT_ENTRY + 1; }), Errc::einval);
    refused(with([](auto& c) { c.ldt_base = 0x1001, c.ldt_ents = 1; }), Errc::einval);
    refused(with([](auto& c) { c.debugreg[7] = 1ull << 32; }), Errc::einval);
    refused(with([](auto& c) { c.debugreg[0] = 0xFFFF'8000'0000'0000; }), Errc::einval);  // the hypervisor's
    refused(with([](auto& c) { c.flags = 0; }), Errc::einval);  // user mode without user page tables
    refused(with([&](auto& c) { c.ctrlreg[3] = guest->l1.value << 12; }), Errc::einval);  // an L1, not an L4
    refused(with([&](auto& c) { c.ctrlreg[3] = theirs.value << 12; }), Errc::einval);
    refused(with([&](auto& c) { c.ctrlreg[1] = theirs.value << 12; }), Errc::einval);  // the kernel base is given back
    const std::uint64_t writable_page = table(guest->l1)[argument_area >> 12] & 0x000F'FFFF'FFFF'F000;
    refused(with([&](auto& c) { c.gdt_ents = 1, c.gdt_frames[0] = writable_page >> 12; }), Errc::einval);
    CHECK(raw_op(abi::VCPUOP_initialise, 1, 0xFFFF'8000'0000'0000) == hv::xen_errno(Errc::efault));
}

TEST_CASE_METHOD(VcpuOpFixture, "vcpu_op: initialise clears MXCSR's reserved bits, which fxrstor would fault on", "[pv][vcpu_op][hostile]") {
    abi::vcpu_guest_context context = secondary_context(*guest->vcpu_memory[0].kernel_base);
    context.flags |= abi::VGCF_i387_valid;
    const std::uint32_t hostile = 0xFFFF'FFFF;
    std::memcpy(context.fpu_ctxt.x + 24, &hostile, sizeof hostile);
    REQUIRE(vcpu_op(abi::VCPUOP_initialise, context, 1) == 0);
    std::uint32_t mxcsr = 0;
    std::memcpy(&mxcsr, vcpus.starts.at(0).second.fpu.data() + 24, sizeof mxcsr);
    CHECK(mxcsr == 0xFFBF);
}

}  // namespace
}  // namespace pv_test
