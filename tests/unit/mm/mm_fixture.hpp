// A machine of 256 frames for the memory component's tests, with two domains.
#pragma once

#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <vector>

#include <hv/page_tables.hpp>

namespace mm_test {

using hv::DomId;
using hv::Errc;
using hv::Mfn;
using namespace hv::mm;

class ArrayPlatform final : public MemoryPlatform {
public:
    explicit ArrayPlatform(std::size_t frame_count) : memory(frame_count) {}

    std::byte* map(Mfn frame) override { return memory.at(frame.value).data(); }
    std::uint64_t hypervisor_l4_entry(const DomainMemory& domain, unsigned slot) override {
        // Recognisable, and different per domain and per slot.
        return (std::uint64_t{domain.id.value} << 40) | (std::uint64_t{slot} << 12) | pte::present;
    }
    void flush_tlb(const DomainMemory&) override { ++flushes; }
    void flush_caches() override { ++cache_flushes; }
    // What a platform copying descriptors into its own GDT hears: the vCPU's GDT as it was then.
    void gdt_changed(const DomainMemory& domain, const VcpuMmu& vcpu) override {
        gdt_changes.push_back({domain.id, &vcpu, vcpu.gdt_entries,
                               std::vector<std::uint64_t>(vcpu.gdt_frames.begin(),
                                                          vcpu.gdt_frames.begin() + vcpu.gdt_frame_count())});
    }
    void descriptor_changed(const DomainMemory& domain, Mfn frame, unsigned index, std::uint64_t descriptor) override {
        descriptor_changes.push_back({domain.id, frame, index, descriptor});
    }

    struct GdtChange {
        DomId domain;
        const VcpuMmu* vcpu;
        std::uint32_t entries;
        std::vector<std::uint64_t> frames;
    };
    struct DescriptorChange {
        DomId domain;
        Mfn frame;
        unsigned index;
        std::uint64_t descriptor;
    };

    std::vector<std::array<std::byte, page_size>> memory;
    int flushes = 0;
    int cache_flushes = 0;
    std::vector<GdtChange> gdt_changes;
    std::vector<DescriptorChange> descriptor_changes;
};

// Everything a test may assert did not change.
struct Snapshot {
    std::vector<std::array<std::byte, page_size>> memory;
    std::vector<std::tuple<std::uint32_t, std::uint32_t, PageType, std::uint8_t, std::int16_t, std::uint16_t>> pages;
    bool operator==(const Snapshot&) const = default;
};

constexpr std::uint64_t entry(Mfn frame, std::uint64_t flags) { return (frame.value << 12) | flags; }
constexpr std::uint64_t rw = pte::present | pte::writable;
constexpr std::uint64_t ro = pte::present;

struct MmFixture {
    static constexpr std::size_t frame_count = 256;

    MmFixture() {
        frames.add_to_heap(Mfn{1}, frame_count - 1);  // frame 0 stays out of the heap: never valid to map
        REQUIRE(frames.add_domain(dom1));
        REQUIRE(frames.add_domain(dom2));
    }

    Mfn allocate(DomainMemory& domain) {
        auto frame = frames.allocate(domain);
        REQUIRE(frame);
        return *frame;
    }
    std::uint64_t* table(Mfn frame) { return reinterpret_cast<std::uint64_t*>(platform.map(frame)); }

    // An L4 -> L3 -> L2 -> L1 chain for `domain`, entry 0 at each level, the L1 mapping `data`.
    struct Chain {
        Mfn l4, l3, l2, l1, data;
    };
    Chain build_chain(DomainMemory& domain, std::uint64_t data_flags = rw) {
        Chain chain{allocate(domain), allocate(domain), allocate(domain), allocate(domain), allocate(domain)};
        table(chain.l4)[0] = entry(chain.l3, rw);
        table(chain.l3)[0] = entry(chain.l2, rw);
        table(chain.l2)[0] = entry(chain.l1, rw);
        table(chain.l1)[0] = entry(chain.data, data_flags);
        return chain;
    }

    Snapshot snapshot() const {
        Snapshot snap{platform.memory, {}};
        for (std::size_t i = 0; i < frame_count; ++i)
            snap.pages.emplace_back(infos[i].ref_count, infos[i].type_count, infos[i].type, infos[i].flags,
                                    infos[i].linear_count, infos[i].owner.value);
        return snap;
    }

    // What the hypervisor does before it resumes a guest: finish every queued devalidation.
    void settle() {
        for (DomainMemory& domain : frames.domains())
            tables.drain(domain, UINT32_MAX);
    }

    void require_invariants() {
        const auto violation = check_invariants(frames, vcpus, {}, scratch);
        if (violation)
            FAIL("invariant broken: " << violation->what << " (frame " << violation->frame.value << ")");
    }

    ArrayPlatform platform{frame_count};
    std::vector<PageInfo> infos = std::vector<PageInfo>(frame_count);
    std::vector<std::uint64_t> m2p = std::vector<std::uint64_t>(frame_count);
    FrameTable frames{platform, infos, m2p};
    PageTables tables{frames};
    DomainMemory dom1{DomId{1}, 100};
    DomainMemory dom2{DomId{2}, 100};
    std::vector<VcpuMmu> vcpus{VcpuMmu{.domain = DomId{1}}, VcpuMmu{.domain = DomId{2}}};
    std::vector<ExpectedCounts> scratch = std::vector<ExpectedCounts>(frame_count);
};

}  // namespace mm_test
