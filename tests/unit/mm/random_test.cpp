// Thousands of random operations, valid and not, from three domains; after each one the invariant
// checker recomputes every count, and a refused operation must have changed nothing.
#include "mm_fixture.hpp"

#include <array>
#include <functional>
#include <optional>
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
        // Often the page tables built at the start, sometimes frames past the table, else any.
        const std::uint64_t roll = random() % 100;
        if (roll < 2)
            return Mfn{frame_count + random() % 4};
        if (roll < 30)
            return tables_built[random() % tables_built.size()];
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

    enum class Outcome { accepted, refused };

    // One random operation. A third of them run with validation limited to a small step and are
    // issued again while they stop incomplete, as a hypercall continuation would, with the
    // invariants checked at every intermediate state.
    Outcome step() {
        const auto operation = pick_operation();
        const bool limited = random() % 3 == 0;
        tables.set_validation_step(1 + random() % 3);
        for (int attempts = 0;;) {
            std::optional<PageTables::ValidationStep> step;
            if (limited)
                step.emplace(tables);
            const hv::Result<void> result = operation();
            if (result)
                return Outcome::accepted;
            if (result.error() != validation_incomplete)
                return Outcome::refused;
            ++incomplete_steps;
            require_invariants();
            REQUIRE(++attempts < 1000);  // every step makes progress
        }
    }

    std::function<hv::Result<void>()> pick_operation() {
        DomainMemory& domain = pick_domain();
        const Mfn frame = pick_frame();
        VcpuMmu& vcpu = vcpu_of(domain);
        switch (random() % 10) {
        case 0:
            return [this, &domain] { return frames.allocate(domain) ? hv::Result<void>{} : Errc::enomem; };
        case 1:
            return [this, &domain, frame] { return frames.release(domain, frame); };
        case 2:
            return [this, &domain, frame, level = 1 + random() % 4] {
                return tables.pin(domain, frame, static_cast<unsigned>(level));
            };
        case 3:
            return [this, &domain, frame] { return tables.unpin(domain, frame); };
        case 4:
            return [this, &domain, &vcpu, frame] { return tables.set_kernel_base(domain, vcpu, frame); };
        case 5:
            return [this, &domain, &vcpu, frame = random() % 4 ? frame : Mfn{0}] {
                return tables.set_user_base(domain, vcpu, frame);
            };
        case 6:
            return [this, &domain, &vcpu, gdt = std::array{frame.value, pick_frame().value},
                    entries = static_cast<std::uint32_t>(random() % 1100)] {
                return tables.set_gdt(domain, vcpu, gdt, entries);
            };
        default: {
            // Privileged dom0 sometimes maps another domain's frames.
            DomainMemory& frame_owner = &domain == &dom0 && random() % 2 ? dom2 : domain;
            const unsigned index = pick_index();
            const std::uint64_t value = random() % 8 ? entry(pick_frame(), pick_flags()) : 0;
            return [this, &domain, &frame_owner, frame, index, value, preserve = random() % 2 == 0] {
                const std::uint64_t before = frames.is_valid(frame) ? table(frame)[index] : 0;
                auto result = tables.update_entry(domain, frame_owner, frame, index, value, preserve);
                if (!result && frames.is_valid(frame))
                    CHECK(table(frame)[index] == before);
                return result;
            };
        }
        }
    }

    std::uint64_t random() { return generator(); }

    DomainMemory dom0{DomId{0}, 90, true};
    std::vector<Mfn> tables_built;
    int incomplete_steps = 0;
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
    // Three pinned chains per domain and two left for the random operations to validate.
    for (DomainMemory* domain : {&dom0, &dom1, &dom2}) {
        for (int i = 0; i < 5; ++i) {
            const Chain chain = build_chain(*domain);
            table(chain.l1)[1] = entry(allocate(*domain), ro);
            if (i < 3)
                REQUIRE(tables.pin(*domain, chain.l4, 4));
            tables_built.insert(tables_built.end(), {chain.l4, chain.l3, chain.l2, chain.l1});
        }
        for (int i = 0; i < 30; ++i)
            allocate(*domain);
    }
    int accepted = 0;
    constexpr int steps = 3000;
    for (int i = 0; i < steps; ++i) {
        const auto before = counts(infos);
        const Outcome outcome = step();
        require_invariants();  // also with devalidations still queued
        settle();
        if (outcome == Outcome::accepted)
            ++accepted;
        else
            REQUIRE(counts(infos) == before);
        require_invariants();
    }
    INFO(accepted << " of " << steps << " operations accepted, " << incomplete_steps << " validation steps stopped");
    CHECK(accepted > steps / 10);       // the mix exercises success...
    CHECK(accepted < steps * 9 / 10);   // ...and refusal
    CHECK(incomplete_steps > 0);        // ...and validation in steps

    // Tearing every domain down returns every frame to the heap.
    for (DomainMemory* domain : {&dom0, &dom1, &dom2}) {
        while (!tables.relinquish(*domain, std::span{&vcpu_of(*domain), 1}, 16))
            require_invariants();
    }
    require_invariants();
    CHECK(frames.free_frames() == frame_count - 1);
    CHECK(dom0.tot_pages + dom1.tot_pages + dom2.tot_pages == 0);
}
