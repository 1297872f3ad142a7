// The domain tests' machine: 4096 frames, a Domains over them with a platform that records what
// it is asked, a console sink that keeps the text, and domains whose guest memory is reached
// through their own page tables, so that a grant mapped by one domain really shows the granter's
// frame to its guest.
#pragma once

#include "../mm/mmu_ops_fixture.hpp"

#include <cstdlib>
#include <memory>
#include <string>
#include <tuple>

#include <hv/domain_hypercalls.hpp>

namespace domain_test {
using namespace mm_test;
using namespace hv::domain;

// The xenstore's memory from the C heap, counting what is outstanding.
class HeapStoreMemory final : public hv::xenstore::StoreMemory {
public:
    void* allocate(std::size_t bytes) override {
        ++outstanding;
        return std::aligned_alloc(16, (bytes + 15) / 16 * 16);
    }
    void release(void* block, std::size_t) override {
        --outstanding;
        std::free(block);
    }
    long outstanding = 0;
};
using hv::Port;
using hv::evtchn::PortEntry;
using hv::evtchn::PortState;

constexpr long error(Errc code) { return hv::xen_errno(code); }

class StringSink final : public hv::console::ConsoleSink {
public:
    void write(std::string_view text) override { this->text += text; }
    std::string text;
};

class FakeDomainPlatform final : public DomainPlatform {
public:
    using VcpuEvent = std::pair<abi::domid_t, std::uint32_t>;

    void kick_vcpu(Domain& domain, std::uint32_t vcpu) override { kicks.emplace_back(domain.id().value, vcpu); }
    void yield(Domain& domain, std::uint32_t vcpu) override { yields.emplace_back(domain.id().value, vcpu); }
    void set_poll_timeout(Domain& domain, std::uint32_t vcpu, std::uint64_t deadline) override {
        timeouts.emplace_back(domain.id().value, vcpu, deadline);
    }
    void domain_shut_down(Domain& domain) override { shut_down.push_back(domain.id().value); }
    void domain_destroyed(DomId id) override { destroyed.push_back(id.value); }

    std::vector<VcpuEvent> kicks, yields;
    std::vector<std::tuple<abi::domid_t, std::uint32_t, std::uint64_t>> timeouts;
    std::vector<abi::domid_t> shut_down, destroyed;
};

// A vCPU's view of memory: a walk of its current page tables, as the hardware would do it.
// Reads need every level present, writes every level writable too.
class WalkingMemory final : public hv::GuestMemory {
public:
    WalkingMemory(MemoryPlatform& platform, const VcpuMmu& vcpu) : platform_{platform}, vcpu_{vcpu} {}

    bool read(Vaddr address, std::span<std::byte> into) override {
        return each_page(address.value, into.size(), false, [&](std::byte* page, std::size_t done, std::size_t size) {
            std::memcpy(into.data() + done, page, size);
        });
    }
    bool write(Vaddr address, std::span<const std::byte> from) override {
        return each_page(address.value, from.size(), true, [&](std::byte* page, std::size_t done, std::size_t size) {
            std::memcpy(page, from.data() + done, size);
        });
    }

    // Where `address` leads, or nullptr.
    std::byte* translate(std::uint64_t address, bool write) {
        if (!vcpu_.kernel_base)
            return nullptr;
        Mfn table = *vcpu_.kernel_base;
        for (unsigned level = 4; level >= 1; --level) {
            const unsigned index = (address >> (12 + 9 * (level - 1))) & 511;
            const std::uint64_t entry = reinterpret_cast<const std::uint64_t*>(platform_.map(table))[index];
            if ((entry & pte::present) == 0 || (write && (entry & pte::writable) == 0))
                return nullptr;
            table = pte::frame(entry);
        }
        return platform_.map(table) + (address & 0xFFF);
    }

private:
    template <class Copy>
    bool each_page(std::uint64_t address, std::size_t length, bool write, Copy copy) {
        // All or nothing: every page is checked before a byte moves.
        for (std::size_t done = 0; done < length; done += page_size - ((address + done) & 0xFFF))
            if (translate(address + done, write) == nullptr)
                return false;
        for (std::size_t done = 0; done < length;) {
            const std::size_t size = std::min<std::size_t>(length - done, page_size - ((address + done) & 0xFFF));
            copy(translate(address + done, write), done, size);
            done += size;
        }
        return true;
    }

    MemoryPlatform& platform_;
    const VcpuMmu& vcpu_;
};

// A domain and the storage its embedder gives it.
struct TestDomain {
    TestDomain(hv::console::ConsoleSink& sink, const DomainConfig& config, std::size_t vcpu_count = 2,
               std::size_t port_count = 64, std::size_t grant_frames = 4, std::size_t maptrack_entries = 64)
        : ports(port_count), grant_frame_list(grant_frames),
          active(grant_frames * hv::gnttab::entries_per_frame), maptrack(maptrack_entries), vcpus(vcpu_count),
          vcpu_memory(vcpu_count, VcpuMmu{.domain = config.id}), vcpu_events(vcpu_count),
          domain{config, {ports, {grant_frame_list, active, maptrack}, vcpus, vcpu_memory, vcpu_events}, sink} {}

    std::vector<PortEntry> ports;
    std::vector<std::uint64_t> grant_frame_list;
    std::vector<hv::gnttab::ActiveEntry> active;
    std::vector<hv::gnttab::MaptrackEntry> maptrack;
    std::vector<Vcpu> vcpus;
    std::vector<VcpuMmu> vcpu_memory;
    std::vector<hv::evtchn::EvtchnVcpu> vcpu_events;
    Domain domain;
    std::unique_ptr<WalkingMemory> memory;  // vCPU 0's, once it has an address space
    Mfn l1{0};                              // maps the first 2 MiB of its address space
};

// Guest addresses in every test domain's address space: hypercall arguments, then free slots.
inline constexpr std::uint64_t argument_area = 0x10000;  // 8 pages, writable
inline constexpr unsigned argument_pages = 8;
inline constexpr std::uint64_t free_area = 0x40000;     // unmapped: for grant mappings

struct DomainFixture {
    static constexpr std::size_t frame_count = 4096;  // 16 MiB: room for a built 4 MiB domain and more

    DomainFixture() { frames.add_to_heap(Mfn{1}, frame_count - 1); }

    // A created and unpaused domain with an address space: an L4 -> L3 -> L2 -> L1 chain pinned as
    // vCPU 0's kernel base, the L1 mapping the argument area.
    std::unique_ptr<TestDomain> make(abi::domid_t id, std::string_view name, bool privileged = false,
                                     std::uint64_t max_pages = 64) {
        auto test = std::make_unique<TestDomain>(
            sink, DomainConfig{.id = DomId{id}, .name = name, .max_pages = max_pages, .privileged = privileged, .console_write = true});
        REQUIRE(domains.create(test->domain));
        REQUIRE(domains.unpause(test->domain));
        DomainMemory& owner = test->domain.memory;
        const Mfn l4 = allocate(owner), l3 = allocate(owner), l2 = allocate(owner);
        test->l1 = allocate(owner);
        table(l4)[0] = entry(l3, rw);
        table(l3)[0] = entry(l2, rw);
        table(l2)[0] = entry(test->l1, rw);
        for (unsigned page = 0; page < argument_pages; ++page)
            table(test->l1)[(argument_area >> 12) + page] = entry(allocate(owner), rw);
        REQUIRE(tables.pin(owner, l4, 4));
        REQUIRE(tables.set_kernel_base(owner, test->vcpu_memory[0], l4));
        test->memory = std::make_unique<WalkingMemory>(platform, test->vcpu_memory[0]);
        return test;
    }
    Mfn allocate(DomainMemory& owner) {
        const auto frame = frames.allocate(owner);
        REQUIRE(frame);
        return *frame;
    }
    std::uint64_t* table(Mfn frame) { return reinterpret_cast<std::uint64_t*>(platform.map(frame)); }

    // Tears a domain down in small steps; true once it is gone, false if it still waits after
    // many calls (for mappers of its grants).
    bool destroy(TestDomain& test, unsigned budget = 4) {
        for (int call = 0; call < 10'000; ++call)
            if (domains.destroy(test.domain, budget))
                return true;
        return false;
    }

    HypercallCaller caller(TestDomain& test, std::uint32_t vcpu = 0) {
        return {test.domain, vcpu, *test.memory, preemption, continuation};
    }
    long call(TestDomain& test, std::uint64_t number, std::initializer_list<std::uint64_t> arguments = {},
              std::uint32_t vcpu = 0) {
        HypercallRegisters registers{number, {}};
        std::copy(arguments.begin(), arguments.end(), registers.args);
        auto who = caller(test, vcpu);
        return hypercall(handlers, who, registers);
    }
    // Writes `value` at guest address `address` of `test`, as its guest would.
    template <class T>
    void poke(TestDomain& test, std::uint64_t address, const T& value) {
        REQUIRE(test.memory->write(Vaddr{address}, std::as_bytes(std::span{&value, 1})));
    }
    template <class T>
    T peek(TestDomain& test, std::uint64_t address) {
        T value;
        REQUIRE(test.memory->read(Vaddr{address}, std::as_writable_bytes(std::span{&value, 1})));
        return value;
    }

    // A sub-op of event_channel_op or sched_op whose argument is `argument`, placed in the
    // caller's argument area and read back from there afterwards, as the guest would see it.
    template <class T>
    long op(TestDomain& test, std::uint64_t number, unsigned command, T& argument, std::uint32_t vcpu = 0) {
        poke(test, argument_area, argument);
        const long result = call(test, number, {command, argument_area}, vcpu);
        argument = peek<T>(test, argument_area);
        return result;
    }
    // One GNTTABOP whose single structure is `argument`, likewise.
    template <class T>
    long grant_op(TestDomain& test, unsigned command, T& argument) {
        poke(test, argument_area, argument);
        const long result = call(test, abi::HYPERVISOR_grant_table_op, {command, argument_area, 1});
        argument = peek<T>(test, argument_area);
        return result;
    }

    // An interdomain channel set up as two guests do: `from` allocates an unbound port for `to`,
    // `to` binds to it. The two ports.
    std::pair<Port, Port> connect(TestDomain& from, TestDomain& to) {
        abi::evtchn_alloc_unbound alloc{abi::DOMID_SELF, to.domain.id().value, 0};
        REQUIRE(op(from, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_alloc_unbound, alloc) == 0);
        abi::evtchn_bind_interdomain bind{from.domain.id().value, alloc.port, 0};
        REQUIRE(op(to, abi::HYPERVISOR_event_channel_op, abi::EVTCHNOP_bind_interdomain, bind) == 0);
        return {Port{alloc.port}, Port{bind.local_port}};
    }

    // `granter`'s guest writes grant entry `ref` for `grantee`: domid and frame, then the flags.
    void grant(TestDomain& granter, std::uint32_t ref, const TestDomain& grantee, Mfn frame,
               std::uint16_t flags = abi::GTF_permit_access) {
        auto& entry = reinterpret_cast<abi::grant_entry_v1*>(platform.map(Mfn{granter.grant_frame_list[0]}))[ref];
        entry.domid = grantee.domain.id().value;
        entry.frame = static_cast<std::uint32_t>(frame.value);
        entry.flags = flags;
    }
    std::uint16_t grant_flags(TestDomain& granter, std::uint32_t ref) {
        return reinterpret_cast<abi::grant_entry_v1*>(platform.map(Mfn{granter.grant_frame_list[0]}))[ref].flags;
    }
    // `mapper` maps `granter`'s grant `ref` at `address`: the map_grant_ref as it came back.
    abi::gnttab_map_grant_ref map_grant(TestDomain& mapper, const TestDomain& granter, std::uint32_t ref,
                                        std::uint64_t address, std::uint32_t flags = abi::GNTMAP_host_map) {
        abi::gnttab_map_grant_ref map{};
        map.host_addr = address;
        map.flags = flags;
        map.ref = ref;
        map.dom = granter.domain.id().value;
        REQUIRE(grant_op(mapper, abi::GNTTABOP_map_grant_ref, map) == 0);
        return map;
    }
    std::int16_t unmap_grant(TestDomain& mapper, std::uint32_t handle, std::uint64_t address) {
        abi::gnttab_unmap_grant_ref unmap{address, 0, handle, 0};
        REQUIRE(grant_op(mapper, abi::GNTTABOP_unmap_grant_ref, unmap) == 0);
        return unmap.status;
    }

    abi::shared_info& shared_info(TestDomain& test) {
        return *reinterpret_cast<abi::shared_info*>(platform.map(test.domain.shared_info));
    }

    // Every component's invariants, and the frame table's counts against every vCPU's bases.
    void require_invariants(std::initializer_list<TestDomain*> live) {
        std::vector<VcpuMmu> all;
        std::vector<Mfn> console_rings;
        for (TestDomain* test : live) {
            all.insert(all.end(), test->vcpu_memory.begin(), test->vcpu_memory.end());
            if (test->domain.console_ring)
                console_rings.push_back(*test->domain.console_ring);
            if (test->domain.store_ring)
                console_rings.push_back(*test->domain.store_ring);
            for (const Vcpu& vcpu : test->vcpus)
                if (vcpu.vcpu_info_frame)
                    console_rings.push_back(*vcpu.vcpu_info_frame);
        }
        if (const auto violation = hv::mm::check_invariants(frames, all, console_rings, scratch))
            FAIL("mm invariant broken: " << violation->what << " (frame " << violation->frame.value << ")");
        if (const auto violation = hv::evtchn::check_invariants(domains.event_channels()))
            FAIL("evtchn invariant broken: " << violation->what << " (domain " << violation->domain.value
                                             << ", port " << violation->port.value << ")");
        if (const auto violation = hv::gnttab::check_invariants(domains.grant_tables()))
            FAIL("grant invariant broken: " << violation->what << " (domain " << violation->domain.value
                                            << ", index " << violation->index << ")");
    }

    ArrayPlatform platform{frame_count};
    std::vector<PageInfo> infos = std::vector<PageInfo>(frame_count);
    std::vector<std::uint64_t> m2p = std::vector<std::uint64_t>(frame_count);
    FrameTable frames{platform, infos, m2p};
    PageTables tables{frames};
    FakeDomainPlatform machine;
    StringSink sink;
    HeapStoreMemory store_memory;
    hv::xenstore::Store store{store_memory};
    Domains domains{tables, machine, &store};
    Hypercalls handlers{domains};
    CountdownPreemption preemption;
    Continuation continuation;
    std::vector<ExpectedCounts> scratch = std::vector<ExpectedCounts>(frame_count);
};

}  // namespace domain_test
