#include "domain_fixture.hpp"

namespace domain_test {
namespace {

TEST_CASE_METHOD(DomainFixture, "every hypercall number reaches its component", "[domain][dispatch]") {
    auto guest = make(1, "guest");

    SECTION("mmu_update") {
        // Entry 40 of the guest's L1 maps one of its frames, through mmu_update.
        const Mfn data = allocate(guest->domain.memory);
        poke(*guest, argument_area, abi::mmu_update{(guest->l1.value << 12) + 40 * 8, entry(data, rw)});
        CHECK(call(*guest, abi::HYPERVISOR_mmu_update, {argument_area, 1, 0, abi::DOMID_SELF}) == 0);
        CHECK(guest->memory->translate(40 << 12, true) == platform.map(data));
    }
    SECTION("update_va_mapping") {
        const Mfn data = allocate(guest->domain.memory);
        CHECK(call(*guest, abi::HYPERVISOR_update_va_mapping, {41 << 12, entry(data, ro), 0}) == 0);
        CHECK(guest->memory->translate(41 << 12, false) == platform.map(data));
    }
    SECTION("mmuext_op") {
        const Mfn table = allocate(guest->domain.memory);
        abi::mmuext_op pin{};
        pin.cmd = abi::MMUEXT_PIN_L1_TABLE;
        pin.arg1.mfn = table.value;
        poke(*guest, argument_area, pin);
        CHECK(call(*guest, abi::HYPERVISOR_mmuext_op, {argument_area, 1, 0, abi::DOMID_SELF}) == 0);
        CHECK(frames.info(table).type == PageType::l1);
    }
    SECTION("memory_op") {
        poke(*guest, argument_area, abi::DOMID_SELF);
        CHECK(call(*guest, abi::HYPERVISOR_memory_op, {abi::XENMEM_current_reservation, argument_area}) ==
              static_cast<long>(guest->domain.memory.tot_pages));
    }
    SECTION("grant_table_op") {
        abi::gnttab_query_size query{abi::DOMID_SELF, 0, 0, 0x5555};
        CHECK(grant_op(*guest, abi::GNTTABOP_query_size, query) == 0);
        CHECK(query.status == abi::GNTST_okay);
        CHECK(query.nr_frames == 1);
        CHECK(query.max_nr_frames == 4);
    }
    SECTION("event_channel_op") {
        abi::evtchn_bind_ipi bind{1, 0};
        CHECK(op(*guest, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_bind_ipi, bind) == 0);
        CHECK(guest->ports.at(bind.port).state == PortState::ipi);
        CHECK(guest->ports.at(bind.port).notify_vcpu == 1);
    }
    SECTION("console_io") {
        poke(*guest, argument_area, std::array<char, 6>{'h', 'e', 'l', 'l', 'o', '\n'});
        CHECK(call(*guest, abi::HYPERVISOR_console_io, {abi::CONSOLEIO_write, 6, argument_area}) == 0);
        CHECK(sink.text == "(guest) hello\n");
    }
    SECTION("set_gdt and update_descriptor") {
        const Mfn gdt = allocate(guest->domain.memory);
        poke(*guest, argument_area, gdt.value);
        CHECK(call(*guest, abi::HYPERVISOR_set_gdt, {argument_area, 16}) == 0);
        CHECK(frames.info(gdt).type == PageType::seg_desc);
        CHECK(guest->vcpu_memory[0].gdt_entries == 16);
        // A flat 64-bit code segment, DPL 3, into entry 2.
        const std::uint64_t code = 0x00AF'FA00'0000'FFFF;
        CHECK(call(*guest, abi::HYPERVISOR_update_descriptor, {(gdt.value << 12) + 16, code}) == 0);
        CHECK(table(gdt)[2] == code);
    }
}

TEST_CASE_METHOD(DomainFixture, "unknown hypercalls and sub-ops give enosys, bad handles efault",
                 "[domain][dispatch][hostile]") {
    auto guest = make(1, "guest");
    for (std::uint64_t number : {std::uint64_t{7}, std::uint64_t{16}, std::uint64_t{36}, std::uint64_t{64},
                                 std::uint64_t{1} << 40, ~std::uint64_t{0}})
        CHECK(call(*guest, number, {1, 2, 3}) == error(Errc::enosys));
    CHECK(call(*guest, abi::HYPERVISOR_event_channel_op, {99, argument_area}) == error(Errc::enosys));
    CHECK(call(*guest, abi::HYPERVISOR_sched_op, {99, argument_area}) == error(Errc::enosys));
    CHECK(call(*guest, abi::HYPERVISOR_xen_version, {99, argument_area}) == error(Errc::enosys));
    // console_io checks permission first: only a domain that may read gets as far as the command.
    CHECK(call(*guest, abi::HYPERVISOR_console_io, {99, 0, argument_area}) == error(Errc::eperm));
    CHECK(call(*guest, abi::HYPERVISOR_vm_assist, {7, abi::VMASST_TYPE_writable_pagetables}) == error(Errc::enosys));

    // Unmapped, hypervisor, non-canonical and wrapping addresses.
    for (std::uint64_t bad : {free_area, abi::HYPERVISOR_VIRT_START + 0x1000, std::uint64_t{1} << 47, ~std::uint64_t{7}}) {
        CHECK(call(*guest, abi::HYPERVISOR_event_channel_op, {abi::EVTCHNOP_bind_ipi, bad}) == error(Errc::efault));
        CHECK(call(*guest, abi::HYPERVISOR_sched_op, {abi::SCHEDOP_shutdown, bad}) == error(Errc::efault));
        CHECK(call(*guest, abi::HYPERVISOR_xen_version, {abi::XENVER_extraversion, bad}) == error(Errc::efault));
        CHECK(call(*guest, abi::HYPERVISOR_console_io, {abi::CONSOLEIO_write, 4, bad}) == error(Errc::efault));
        CHECK(call(*guest, abi::HYPERVISOR_multicall, {bad, 1}) == error(Errc::efault));
    }
    CHECK(guest->domain.state == DomainState::running);
    CHECK(guest->domain.events->ports_in_use == 0);
    CHECK(sink.text.empty());
}

// A multicall list at the start of the argument area, and what the guest sees of it afterwards.
struct Batch {
    std::vector<abi::multicall_entry> entries;
};
abi::multicall_entry entry_for(std::uint64_t op, std::initializer_list<std::uint64_t> arguments) {
    abi::multicall_entry call{};
    call.op = op;
    call.result = 0x5555;
    std::copy(arguments.begin(), arguments.end(), call.args);
    return call;
}

struct MulticallFixture : DomainFixture {
    MulticallFixture() : guest{make(1, "guest")} {}

    // The batch goes at argument_area; structures its calls point at go from data_area.
    static constexpr std::uint64_t data_area = argument_area + 0x4000;
    long run(std::vector<abi::multicall_entry> batch, std::uint32_t count = UINT32_MAX) {
        for (std::size_t i = 0; i < batch.size(); ++i)
            poke(*guest, argument_area + i * sizeof(abi::multicall_entry), batch[i]);
        return call(*guest, abi::HYPERVISOR_multicall,
                    {argument_area, count == UINT32_MAX ? batch.size() : count});
    }
    abi::multicall_entry entry(std::size_t index) {
        return peek<abi::multicall_entry>(*guest, argument_area + index * sizeof(abi::multicall_entry));
    }
    long result(std::size_t index) { return static_cast<long>(entry(index).result); }
    // The guest issues the continuation it was given, with no one else waiting this time.
    long reissue() {
        preemption.allowed = 1 << 30;
        const HypercallRegisters again = continuation.registers;
        continuation = {};
        auto who = caller(*guest);
        return hypercall(handlers, who, again);
    }

    std::unique_ptr<TestDomain> guest;
};

TEST_CASE_METHOD(MulticallFixture, "multicall runs each call and writes each result back", "[domain][multicall]") {
    poke(*guest, data_area, abi::evtchn_bind_ipi{0, 0});
    poke(*guest, data_area + 64, abi::evtchn_bind_ipi{1, 0});
    CHECK(run({entry_for(abi::HYPERVISOR_event_channel_op, {abi::EVTCHNOP_bind_ipi, data_area}),
               entry_for(abi::HYPERVISOR_xen_version, {abi::XENVER_pagesize}),
               entry_for(7, {}),  // no such hypercall: its entry says so, the batch goes on
               entry_for(abi::HYPERVISOR_event_channel_op, {abi::EVTCHNOP_bind_ipi, data_area + 64}),
               entry_for(abi::HYPERVISOR_multicall, {argument_area, 1})}) == 0);
    CHECK(result(0) == 0);
    CHECK(result(1) == 4096);
    CHECK(result(2) == error(Errc::enosys));
    CHECK(result(3) == 0);
    CHECK(result(4) == error(Errc::einval));  // no multicall inside a multicall
    CHECK(peek<abi::evtchn_bind_ipi>(*guest, data_area).port == 1);
    CHECK(peek<abi::evtchn_bind_ipi>(*guest, data_area + 64).port == 2);
    CHECK(guest->domain.events->ports_in_use == 2);
    CHECK_FALSE(continuation.requested);
}

TEST_CASE_METHOD(MulticallFixture, "an empty multicall does nothing; an unreadable entry stops the batch",
                 "[domain][multicall][hostile]") {
    CHECK(run({}, 0) == 0);
    // Two entries on the last argument page, the third past its end.
    const std::uint64_t last = argument_area + argument_pages * page_size - 2 * sizeof(abi::multicall_entry);
    poke(*guest, data_area, abi::evtchn_bind_ipi{0, 0});
    poke(*guest, last, entry_for(abi::HYPERVISOR_event_channel_op, {abi::EVTCHNOP_bind_ipi, data_area}));
    poke(*guest, last + 64, entry_for(abi::HYPERVISOR_xen_version, {abi::XENVER_pagesize}));
    CHECK(call(*guest, abi::HYPERVISOR_multicall, {last, 3}) == error(Errc::efault));
    CHECK(peek<abi::multicall_entry>(*guest, last).result == 0);
    CHECK(peek<abi::multicall_entry>(*guest, last + 64).result == 4096);
    CHECK(guest->domain.events->ports_in_use == 1);

}

TEST_CASE_METHOD(MulticallFixture, "a preempted multicall continues with the calls not yet run",
                 "[domain][multicall][continuation]") {
    std::vector<abi::multicall_entry> batch;
    for (unsigned i = 0; i < 5; ++i) {
        poke(*guest, data_area + i * 64, abi::evtchn_bind_ipi{0, 0});
        batch.push_back(entry_for(abi::HYPERVISOR_event_channel_op, {abi::EVTCHNOP_bind_ipi, data_area + i * 64}));
    }
    preemption.allowed = 0;  // the check before the second call finds others waiting
    CHECK(run(batch) == 0);
    REQUIRE(continuation.requested);
    CHECK(continuation.registers.number == abi::HYPERVISOR_multicall);
    CHECK(continuation.registers.args[0] == argument_area + 64);
    CHECK(continuation.registers.args[1] == 4);
    CHECK(guest->domain.events->ports_in_use == 1);
    CHECK(result(1) == 0x5555);

    // The guest issues it again: the rest runs.
    CHECK(reissue() == 0);
    CHECK_FALSE(continuation.requested);
    CHECK(guest->domain.events->ports_in_use == 5);
    for (unsigned i = 0; i < 5; ++i)
        CHECK(peek<abi::evtchn_bind_ipi>(*guest, data_area + i * 64).port == i + 1);
}

TEST_CASE_METHOD(MulticallFixture, "a call that asks for a continuation is written back into its own entry",
                 "[domain][multicall][continuation]") {
    // A console write that is preempted after its first chunk, second in the batch.
    std::string text(300, 'x');
    text.back() = '\n';
    for (std::size_t i = 0; i < text.size(); ++i)
        poke(*guest, data_area + i, text[i]);
    preemption.allowed = 1;  // none before the second entry; others wait after the write's first chunk
    CHECK(run({entry_for(abi::HYPERVISOR_xen_version, {abi::XENVER_pagesize}),
               entry_for(abi::HYPERVISOR_console_io, {abi::CONSOLEIO_write, text.size(), data_area}),
               entry_for(abi::HYPERVISOR_xen_version, {abi::XENVER_pagesize})}) == 0);
    REQUIRE(continuation.requested);
    CHECK(continuation.registers.number == abi::HYPERVISOR_multicall);
    CHECK(continuation.registers.args[0] == argument_area + 64);
    CHECK(continuation.registers.args[1] == 2);
    const auto resumed = entry(1);
    CHECK(resumed.op == abi::HYPERVISOR_console_io);
    CHECK(resumed.args[0] == abi::CONSOLEIO_write);
    CHECK(resumed.args[1] == text.size() - 128);
    CHECK(resumed.args[2] == data_area + 128);
    CHECK(result(2) == 0x5555);

    CHECK(reissue() == 0);
    CHECK_FALSE(continuation.requested);
    CHECK(result(2) == 4096);
    CHECK(sink.text == "(guest) " + text.substr(0, 128) + "\n(guest) " + text.substr(128, 128) + "\n(guest) " +
                           text.substr(256));
}

// Linux's xen_pgd_unpin: one multicall unpins a process's L4, then makes each of its table pages
// writable again through the kernel's direct map. Each call sees the hierarchy gone.
TEST_CASE_METHOD(MulticallFixture, "an unpin's tables can be made writable by the next calls of its multicall",
                 "[domain][multicall]") {
    DomainMemory& owner = guest->domain.memory;
    const Mfn l4 = allocate(owner), l3 = allocate(owner), l2 = allocate(owner), l1 = allocate(owner);
    table(l4)[0] = mm_test::entry(l3, rw);
    table(l3)[0] = mm_test::entry(l2, rw);
    table(l2)[0] = mm_test::entry(l1, rw);
    const std::array process{l3, l2, l1, l4};  // xen_pgd_unpin's order: the L4 last
    constexpr unsigned first_slot = 32;         // guest pages 32-35 map them read-only
    for (unsigned i = 0; i < process.size(); ++i)
        REQUIRE(tables.update_entry(owner, owner, guest->l1, first_slot + i, mm_test::entry(process[i], ro), false));
    REQUIRE(tables.pin(owner, l4, 4));
    abi::mmuext_op unpin{};
    unpin.cmd = abi::MMUEXT_UNPIN_TABLE;
    unpin.arg1.mfn = l4.value;
    poke(*guest, data_area, unpin);
    std::vector<abi::multicall_entry> batch{entry_for(abi::HYPERVISOR_mmuext_op, {data_area, 1, 0, abi::DOMID_SELF})};
    for (unsigned i = 0; i < process.size(); ++i)
        batch.push_back(entry_for(abi::HYPERVISOR_update_va_mapping,
                                  {(first_slot + i) * page_size, mm_test::entry(process[i], rw), 0}));

    SECTION("at once") {
        CHECK(run(batch) == 0);
    }
    SECTION("preempted during the devalidation") {
        preemption.allowed = 1;  // the L4 and the L3 are devalidated, then others wait
        CHECK(run(batch) == 0);
        REQUIRE(continuation.requested);
        CHECK(continuation.registers.args[0] == argument_area);  // the unpin's entry, to finish it
        CHECK(entry(0).args[1] == batch_continued);              // with no element left
        CHECK(result(1) == 0x5555);
        CHECK(infos[l2.value].has(PageInfo::devalidating));
        require_invariants({guest.get()});
        CHECK(reissue() == 0);
    }
    CHECK_FALSE(continuation.requested);
    for (unsigned i = 0; i < batch.size(); ++i)
        CHECK(result(i) == 0);
    for (const Mfn frame : process)
        CHECK(infos[frame.value].type == PageType::writable);
    require_invariants({guest.get()});
}

TEST_CASE_METHOD(MulticallFixture, "a batch stops where its vCPU stops: for good at a shutdown, until woken at a block",
                 "[domain][multicall]") {
    poke(*guest, data_area, abi::evtchn_bind_ipi{0, 0});
    poke(*guest, data_area + 64, abi::sched_shutdown{abi::SHUTDOWN_poweroff});
    const auto bind = entry_for(abi::HYPERVISOR_event_channel_op, {abi::EVTCHNOP_bind_ipi, data_area});

    SECTION("block") {
        CHECK(run({entry_for(abi::HYPERVISOR_sched_op, {abi::SCHEDOP_block, 0}), bind}) == 0);
        CHECK(guest->vcpus[0].blocked);
        CHECK(guest->domain.events->ports_in_use == 0);
        REQUIRE(continuation.requested);
        CHECK(continuation.registers.args[0] == argument_area + 64);
        CHECK(continuation.registers.args[1] == 1);
        domains.poll_timed_out(DomId{1}, 0);  // not polling: still blocked
        CHECK(guest->vcpus[0].blocked);
    }
    SECTION("shutdown") {
        CHECK(run({entry_for(abi::HYPERVISOR_sched_op, {abi::SCHEDOP_shutdown, data_area + 64}), bind}) == 0);
        CHECK(guest->domain.state == DomainState::shutdown);
        CHECK(guest->domain.events->ports_in_use == 0);
        CHECK_FALSE(continuation.requested);
        CHECK(result(1) == 0x5555);
    }
}

TEST_CASE_METHOD(MulticallFixture, "an iret ends the batch", "[domain][multicall]") {
    struct WithIret : Hypercalls {
        using Hypercalls::Hypercalls;
        long iret(HypercallCaller&, const hv::hypercall_args::iret&) { return ++irets; }
        int irets = 0;
    } handlers_with_iret{domains};
    for (unsigned i = 0; i < 3; ++i)
        poke(*guest, argument_area + i * 64,
             entry_for(i == 1 ? abi::HYPERVISOR_iret : abi::HYPERVISOR_xen_version, {abi::XENVER_pagesize}));
    auto who = caller(*guest);
    CHECK(hypercall(handlers_with_iret, who, {abi::HYPERVISOR_multicall, {argument_area, 3}}) == 1);
    CHECK(handlers_with_iret.irets == 1);
    CHECK(result(0) == 4096);
    CHECK(result(1) == 1);
    CHECK(result(2) == 0x5555);
}

}  // namespace
}  // namespace domain_test
