// Thousands of random operations, valid and not, from three domains; after each one the invariant
// checker recomputes every count, and a refused operation must have changed nothing.
#include "mm_fixture.hpp"

#include <random>

using namespace mm_test;

namespace {

struct RandomMachine : MmFixture {
    RandomMachine() {
        REQUIRE(frames.add_domain(dom0));
        vcpus.push_back(VcpuMmu{.domain = dom0.id});
    }

    DomainMemory& pick_domain() {
        DomainMemory* domains[] = {&dom0, &dom1, &dom2};
        return *domains[random() % 3];
    }
    VcpuMmu& vcpu_of(const DomainMemory& domain) {
        for (VcpuMmu& vcpu : vcpus)
            if (vcpu.domain == domain.id)
                return vcpu;
        FAIL("no vCPU");
        return vcpus[0];
    }
    Mfn pick_frame() {
        // Mostly frames somebody owns, sometimes free ones and ones past the table.
        const std::uint64_t roll = random() % 100;
        if (roll < 2)
            return Mfn{frame_count + random() % 4};
        return Mfn{random() % frame_count};
    }
    unsigned pick_index() {
        const unsigned interesting[] = {0, 1, 2, 3, 255, 256, 263, 271, 272, 511};
        return interesting[random() % std::size(interesting)];
    }
    std::uint64_t pick_flags() {
        const std::uint64_t choices[] = {ro, rw, ro | pte::user, rw | pte::user, ro | pte::global,
                                         ro | pte::user | pte::global, rw | pte::large, ro | pte::cache_disable,
                                         rw | pte::accessed | pte::dirty | pte::no_execute, 0};
        return choices[random() % std::size(choices)];
    }

    // One random operation; true when it was accepted.
    bool step() {
        DomainMemory& domain = pick_domain();
        const Mfn frame = pick_frame();
        switch (random() % 10) {
        case 0:
            return static_cast<bool>(frames.allocate(domain));
        case 1:
            return static_cast<bool>(frames.release(domain, frame));
        case 2:
            return static_cast<bool>(tables.pin(domain, frame, 1 + random() % 4));
        case 3:
            return static_cast<bool>(tables.unpin(domain, frame));
        case 4:
            return static_cast<bool>(tables.set_kernel_base(domain, vcpu_of(domain), frame));
        case 5:
            return static_cast<bool>(tables.set_user_base(domain, vcpu_of(domain), random() % 4 ? frame : Mfn{0}));
        case 6: {
            const std::uint64_t gdt[] = {frame.value, pick_frame().value};
            return static_cast<bool>(tables.set_gdt(domain, vcpu_of(domain), gdt, random() % 1100));
        }
        default: {
            // Privileged dom0 sometimes maps another domain's frames.
            DomainMemory& frame_owner = &domain == &dom0 && random() % 2 ? dom2 : domain;
            const unsigned index = pick_index();
            const std::uint64_t value = random() % 8 ? entry(pick_frame(), pick_flags()) : 0;
            const std::uint64_t before = frames.is_valid(frame) ? table(frame)[index] : 0;
            const bool accepted =
                static_cast<bool>(tables.update_entry(domain, frame_owner, frame, index, value, random() % 2));
            if (!accepted && frames.is_valid(frame))
                CHECK(table(frame)[index] == before);
            return accepted;
        }
        }
    }

    std::uint64_t random() { return generator(); }

    DomainMemory dom0{DomId{0}, 90, true};
    std::mt19937_64 generator{20261127};
};

std::vector<std::tuple<std::uint32_t, std::uint32_t, PageType, std::uint8_t, std::int16_t, std::uint16_t>> counts(
    const std::vector<PageInfo>& infos) {
    std::vector<std::tuple<std::uint32_t, std::uint32_t, PageType, std::uint8_t, std::int16_t, std::uint16_t>> result;
    // was_table only remembers that a flush is due: bookkeeping that a refused operation may update.
    for (const PageInfo& page : infos)
        result.emplace_back(page.ref_count, page.type_count, page.type,
                            static_cast<std::uint8_t>(page.flags & ~PageInfo::was_table), page.linear_count,
                            page.owner.value);
    return result;
}

}  // namespace

TEST_CASE_METHOD(RandomMachine, "mm: random operations from three domains keep every invariant", "[mm][hostile]") {
    // Start with memory in every domain and some page tables built the ordinary way.
    for (DomainMemory* domain : {&dom0, &dom1, &dom2}) {
        for (int i = 0; i < 3; ++i)
            REQUIRE(tables.pin(*domain, build_chain(*domain).l4, 4));
        for (int i = 0; i < 40; ++i)
            allocate(*domain);
    }
    int accepted = 0;
    constexpr int steps = 3000;
    for (int i = 0; i < steps; ++i) {
        const auto before = counts(infos);
        const bool ok = step();
        require_invariants();  // also with devalidations still queued
        settle();
        if (ok)
            ++accepted;
        else
            REQUIRE(counts(infos) == before);
        require_invariants();
    }
    INFO(accepted << " of " << steps << " operations accepted");
    CHECK(accepted > steps / 10);       // the mix exercises success...
    CHECK(accepted < steps * 9 / 10);   // ...and refusal

    // Tearing every domain down returns every frame to the heap.
    for (DomainMemory* domain : {&dom0, &dom1, &dom2}) {
        while (!tables.relinquish(*domain, std::span{&vcpu_of(*domain), 1}, 16))
            require_invariants();
    }
    require_invariants();
    CHECK(frames.free_frames() == frame_count - 1);
    CHECK(dom0.tot_pages + dom1.tot_pages + dom2.tot_pages == 0);
}
