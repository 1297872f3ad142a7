// The invariant checker: what frame_table.cpp promises, recomputed from scratch.
#include <hv/descriptors.hpp>
#include <hv/page_tables.hpp>

namespace hv::mm {
namespace {

class Checker {
public:
    Checker(FrameTable& frames, std::span<ExpectedCounts> expected) : frames_{frames}, expected_{expected} {}

    std::optional<InvariantViolation> run(std::span<const VcpuMmu> vcpus, std::span<const Mfn> writable_holds) {
        for (auto& counts : expected_)
            counts = {};
        for (std::uint64_t index = 0; index < frames_.frame_count() && !violation_; ++index)
            count_frame(Mfn{index});
        for (const VcpuMmu& vcpu : vcpus) {
            for (const auto& base : {vcpu.kernel_base, vcpu.user_base}) {
                if (base) {
                    expect(frames_.info(*base).type == PageType::l4, "a vCPU base is not an L4 table", *base);
                    ++expected_[base->value].refs;
                    ++expected_[base->value].types;
                }
            }
            for (unsigned i = 0; i < vcpu.gdt_frame_count(); ++i) {
                const Mfn frame{vcpu.gdt_frames[i]};
                expect(frames_.info(frame).type == PageType::seg_desc, "a GDT frame is not a descriptor page", frame);
                ++expected_[frame.value].refs;
                ++expected_[frame.value].types;
            }
        }
        for (const Mfn frame : writable_holds) {
            expect(frames_.info(frame).type == PageType::writable, "a held frame is not writable", frame);
            ++expected_[frame.value].refs;
            ++expected_[frame.value].types;
        }
        for (std::uint64_t index = 0; index < frames_.frame_count() && !violation_; ++index)
            compare(Mfn{index});
        check_domain_lists();
        return violation_;
    }

private:
    void expect(bool holds, const char* what, Mfn frame) {
        if (!holds && !violation_)
            violation_ = InvariantViolation{what, frame};
    }

    void count_frame(Mfn frame) {
        const PageInfo& page = frames_.info(frame);
        if (page.owner == DomId{pvkit::abi::DOMID_INVALID}) {
            expect(page.ref_count == 0 && page.type_count == 0 && page.flags == 0, "a free frame is in use", frame);
            return;
        }
        ++owned_;
        expect(page.ref_count > 0, "an owned frame has no references", frame);
        if (page.has(PageInfo::devalidating) || page.has(PageInfo::partial)) {
            expect(is_page_table(page.type) && page.type_count == 0, "a queued or partial frame is not an unused table",
                   frame);
            ++expected_[frame.value].refs;
        } else {
            expect((page.type_count == 0) == (page.type == PageType::none), "type and type count disagree", frame);
        }
        if (page.has(PageInfo::allocated))
            ++expected_[frame.value].refs;
        if (page.has(PageInfo::pinned)) {
            expect(is_page_table(page.type), "a pinned frame is not a page table", frame);
            ++expected_[frame.value].refs;
            ++expected_[frame.value].types;
        }
        if (is_page_table(page.type))
            count_entries(frame, table_level(page.type),
                          page.has(PageInfo::partial) ? page.validated_entries : entries_per_table);
        if (page.type == PageType::seg_desc)
            check_descriptors(frame);
    }

    void check_descriptors(Mfn frame) {
        const auto* descriptors = reinterpret_cast<const std::uint64_t*>(frames_.platform().map(frame));
        for (unsigned i = 0; i < entries_per_table; ++i) {
            const auto checked = check_descriptor(descriptors[i]);
            expect(checked && *checked == descriptors[i], "a descriptor page holds a descriptor not allowed", frame);
        }
    }

    // The first `validated` entries hold references (all of them, unless a validation is partial).
    void count_entries(Mfn table, unsigned level, unsigned validated) {
        const auto* entries = reinterpret_cast<const std::uint64_t*>(frames_.platform().map(table));
        const PageInfo& holder = frames_.info(table);
        const bool partial = holder.has(PageInfo::partial);
        for (unsigned i = 0; i < validated; ++i) {
            const std::uint64_t entry = entries[i];
            if (level == 4 && is_hypervisor_l4_slot(i)) {
                if (partial)
                    continue;  // filled when the validation completes
                const DomainMemory* owner = frames_.domain(holder.owner);
                expect(owner && entry == frames_.platform().hypervisor_l4_entry(*owner, i),
                       "a hypervisor L4 slot holds something else", table);
                continue;
            }
            if (!(entry & pte::present))
                continue;
            expect(partial || (entry & pte::user), "a present entry lacks the user bit", table);
            const Mfn target = pte::frame(entry);
            if (!frames_.is_valid(target)) {
                expect(false, "an entry maps a frame beyond the frame table", table);
                continue;
            }
            const PageInfo& mapped = frames_.info(target);
            if (level == 1) {
                expect(!((entry & pte::global) && (entry & pte::guest_kernel)), "a global kernel mapping", table);
                ++expected_[target.value].refs;
                if (entry & pte::writable) {
                    expect(mapped.type == PageType::writable, "a writable mapping of a frame not typed writable", table);
                    ++expected_[target.value].types;
                }
                continue;
            }
            expect(!(entry & pte::large), "a superpage entry in a PV page table", table);
            if (target == table) {
                expect(!(entry & pte::writable), "a table maps itself writable", table);
                continue;
            }
            expect(mapped.owner == holder.owner, "a table links a table of another domain", table);
            ++expected_[target.value].refs;
            ++expected_[target.value].types;
            if (mapped.type == table_type(level)) {
                expect(!(entry & pte::writable), "a writable linear mapping", table);
                ++expected_[table.value].linear;
                --expected_[target.value].linear;
            } else {
                expect(mapped.type == table_type(level - 1), "an entry links a frame of the wrong type", table);
            }
        }
    }

    void compare(Mfn frame) {
        const PageInfo& page = frames_.info(frame);
        const ExpectedCounts& counts = expected_[frame.value];
        expect(page.ref_count == counts.refs, "the reference count differs from the references found", frame);
        expect(page.type_count == counts.types, "the type count differs from the type references found", frame);
        expect(page.linear_count == counts.linear, "the linear count differs from the linear entries found", frame);
    }

    void check_domain_lists() {
        std::uint64_t listed = 0;
        for (const DomainMemory& domain : frames_.domains()) {
            std::uint64_t owned = 0;
            for (const FrameList* list : {&domain.frames, &domain.relinquished, &domain.devalidating}) {
                for (const PageInfo& page : *list) {
                    expect(page.owner == domain.id, "a domain lists a frame it does not own", frames_.mfn_of(page));
                    ++owned;
                }
            }
            expect(owned == domain.tot_pages, "a domain's tot_pages differs from its lists", Mfn{0});
            listed += owned;
        }
        expect(listed == owned_, "an owned frame is in no domain's list", Mfn{0});
    }

    FrameTable& frames_;
    std::span<ExpectedCounts> expected_;
    std::uint64_t owned_ = 0;
    std::optional<InvariantViolation> violation_;
};

}  // namespace

std::optional<InvariantViolation> check_invariants(FrameTable& frames, std::span<const VcpuMmu> vcpus,
                                                   std::span<const Mfn> writable_holds,
                                                   std::span<ExpectedCounts> scratch) {
    if (scratch.size() < frames.frame_count())
        return InvariantViolation{"the scratch space is smaller than the frame table", Mfn{0}};
    return Checker{frames, scratch}.run(vcpus, writable_holds);
}

}  // namespace hv::mm
