// Validation of x86-64 PV page-table entries, and the type references that drive it.
//
// What a present entry may hold (Xen's rules for 64-bit PV guests):
//   - flags: present, writable, user, accessed, dirty, the software bits 9-11 and 52-62, and NX;
//     an L1 entry may also be global. Cache attributes (PWT, PCD, PAT) are refused for domains
//     without I/O access, and so are superpages (PSE at L2/L3): einval.
//   - an L1 entry maps RAM of the page owner (ebusy otherwise, eperm for a frame that is not RAM);
//     a writable one needs the frame's `writable` type, which a page table never has (ebusy).
//   - an L2/L3/L4 entry links a table of the next level down owned by the same domain, validated
//     on first use (einval otherwise); or, read-only, a table of its own level (a linear mapping,
//     see frame_table.cpp).
//   - L4 slots 256-271 are the hypervisor's: a table's guest values there are replaced when it is
//     validated, and the guest can never write them (einval).
// Every present entry gets the user bit: guest kernels run in ring 3. A kernel mapping (an L1 entry
// the guest wrote without the user bit) is marked with the guest-kernel bit 52 so that it stays
// told apart, and may not be global: it would survive the switch to guest user mode (einval).
#include <hv/descriptors.hpp>
#include <hv/guest_memory.hpp>
#include <hv/page_tables.hpp>

namespace hv::mm {
namespace {

// Bits a guest may set in a present entry at any level.
constexpr std::uint64_t software_bits_low = 0x7ull << 9;
constexpr std::uint64_t software_bits_high = 0x7FFull << 52;
constexpr std::uint64_t permitted_flags = pte::present | pte::writable | pte::user | pte::accessed | pte::dirty |
                                          software_bits_low | software_bits_high | pte::no_execute;
constexpr std::uint64_t flag_bits = ~pte::frame_mask;

constexpr std::uint64_t disallowed_flags(unsigned level) {
    const std::uint64_t permitted = level == 1 ? permitted_flags | pte::global : permitted_flags;
    return flag_bits & ~permitted;
}

// A present upper-level entry links a table one level down, or, for a linear mapping, its own level.
constexpr PageType linked_type(unsigned level) { return table_type(level - 1); }

constexpr bool is_kernel_mapping(std::uint64_t l1_entry) {
    return !(l1_entry & pte::user) || (l1_entry & pte::guest_kernel);
}

// The entry as the hypervisor stores it: what the guest wrote plus the bits ring-3 kernels need.
constexpr std::uint64_t adjust_entry(unsigned level, std::uint64_t entry) {
    if (!(entry & pte::present))
        return entry;
    if (level == 1)
        return is_kernel_mapping(entry) ? entry | pte::user | pte::guest_kernel : entry;
    return level == 4 ? entry | pte::user | pte::accessed : entry | pte::user;
}

}  // namespace

std::span<std::uint64_t, entries_per_table> PageTables::table_entries(Mfn table) {
    return std::span<std::uint64_t, entries_per_table>{reinterpret_cast<std::uint64_t*>(frames_.platform().map(table)),
                                                       entries_per_table};
}

std::uint64_t PageTables::read_entry(Mfn table, unsigned index) { return table_entries(table)[index]; }

Result<PageTables::EntryLocation> PageTables::locate_l1_entry(const VcpuMmu& vcpu, std::uint64_t address) {
    if (!vcpu.kernel_base || !is_guest_range(Vaddr{address}, 1))
        return Errc::einval;
    Mfn table = *vcpu.kernel_base;
    for (unsigned level = 4; level > 1; --level) {
        const std::uint64_t entry = read_entry(table, (address >> (12 + 9 * (level - 1))) & (entries_per_table - 1));
        if (!(entry & pte::present) || (entry & pte::large) || !frames_.is_valid(pte::frame(entry)))
            return Errc::einval;
        table = pte::frame(entry);
    }
    return EntryLocation{table, static_cast<unsigned>((address >> 12) & (entries_per_table - 1))};
}

Result<void> PageTables::get_type(Mfn frame, PageType type, DomainMemory& owner) {
    PageInfo& page = frames_.info(frame);
    // The common case first, a frame in use as it is: no validation, no flush, no queue.
    constexpr std::uint8_t special = PageInfo::partial | PageInfo::devalidating | PageInfo::was_table;
    if (page.type == type && page.type_count != 0 && page.type_count != UINT32_MAX && !(page.flags & special)) {
        ++page.type_count;
        return {};
    }
    if (type == PageType::writable && page.type_count == 0 && page.type == PageType::none && !(page.flags & special)) {
        page.type = PageType::writable;
        page.type_count = 1;
        return {};
    }
    return change_type(frame, page, type, owner);
}

Result<void> PageTables::change_type(Mfn frame, PageInfo& page, PageType type, DomainMemory& owner) {
    if (page.has(PageInfo::partial))  // only the same use can finish it; nothing else may start
        return page.type == type ? continue_validation(frame, owner) : Result<void>{Errc::einval};
    if (page.has(PageInfo::devalidating)) {
        if (page.type == type) {
            // Its entries were not touched while it waited: it is still a valid table.
            requeue(page, frames_.domain(page.owner)->frames);
            page.flags &= static_cast<std::uint8_t>(~PageInfo::devalidating);
            page.type_count = 1;
            frames_.put_page(frame);  // the queue's reference
            return {};
        }
        devalidate(page);
    }
    if (page.type_count != 0) {
        if (page.type != type || page.type_count == UINT32_MAX)
            return Errc::einval;
        ++page.type_count;
        return {};
    }
    if (page.has(PageInfo::shared) && type != PageType::writable)
        return Errc::einval;  // hypervisor pages shared with a guest only ever hold data
    // No stale writable translation may outlive a change to a table, and no cached walk through a
    // former table may outlive its becoming writable.
    if (type != PageType::writable || page.has(PageInfo::was_table))
        frames_.flush_owed();
    page.flags &= static_cast<std::uint8_t>(~PageInfo::was_table);
    page.type = type;
    if (is_page_table(type)) {
        ++page.ref_count;  // held while partially validated, so that the frame stays
        page.flags |= PageInfo::partial;
        page.validated_entries = 0;
        return continue_validation(frame, owner);
    }
    page.type_count = 1;
    auto validated = type == PageType::seg_desc ? validate_descriptor_page(table_entries(frame)) : Result<void>{};
    if (!validated) {
        page.type = PageType::none;
        page.type_count = 0;
    }
    return validated;
}

Result<void> PageTables::continue_validation(Mfn frame, DomainMemory& owner) {
    PageInfo& page = frames_.info(frame);
    auto validated = validate_table(frame, table_level(page.type), owner);
    if (!validated && validated.error() == validation_incomplete)
        return validated;
    page.flags &= static_cast<std::uint8_t>(~PageInfo::partial);
    page.validated_entries = 0;
    if (validated)
        page.type_count = 1;
    else
        page.type = PageType::none;
    frames_.put_page(frame);  // the hold of the partial validation
    return validated;
}

void PageTables::abandon_validation(PageInfo& page) {
    const Mfn frame = frames_.mfn_of(page);
    release_entries(frame, table_level(page.type), page.validated_entries);
    page.flags &= static_cast<std::uint8_t>(~PageInfo::partial);
    page.validated_entries = 0;
    page.type = PageType::none;
    frames_.put_page(frame);
}

void PageTables::release_entries(Mfn table, unsigned level, unsigned count) {
    auto entries = table_entries(table);
    for (unsigned i = 0; i < count; ++i) {
        if (!(level == 4 && is_hypervisor_l4_slot(i)))
            release_entry(level, entries[i], table);
    }
}

void PageTables::put_type(Mfn frame) {
    PageInfo& page = frames_.info(frame);
    if (--page.type_count != 0)
        return;
    if (!is_page_table(page.type)) {
        if (page.type == PageType::seg_desc) {
            page.flags |= PageInfo::was_table;
            frames_.defer_flush(*frames_.domain(page.owner));
        }
        page.type = PageType::none;
        return;
    }
    ++page.ref_count;  // the queue's reference: a queued table is never freed
    page.flags |= PageInfo::devalidating;
    requeue(page, frames_.domain(page.owner)->devalidating);
}

bool PageTables::drain(DomainMemory& domain, unsigned budget) {
    for (; budget > 0 && !domain.devalidating.empty(); --budget)
        devalidate(domain.devalidating.front());
    return domain.devalidating.empty();
}

Result<void> PageTables::get_page_and_type(Mfn frame, PageType type, DomainMemory& owner) {
    if (!frames_.get_page(frame, owner))
        return Errc::einval;
    if (auto typed = get_type(frame, type, owner); !typed) {
        frames_.put_page(frame);
        return typed;
    }
    return {};
}

void PageTables::put_page_and_type(Mfn frame) {
    put_type(frame);
    frames_.put_page(frame);
}

Result<void> PageTables::acquire_entry(unsigned level, std::uint64_t entry, Mfn table, DomainMemory& table_owner,
                                       DomainMemory& frame_owner) {
    if (!(entry & pte::present))
        return {};
    if (entry & disallowed_flags(level))
        return Errc::einval;
    const Mfn target = pte::frame(entry);
    if (level == 1) {
        if ((entry & pte::global) && is_kernel_mapping(entry))
            return Errc::einval;
        if (!frames_.is_valid(target))
            return Errc::eperm;  // not RAM: I/O memory, which only domains with I/O access may map
        if (!frames_.get_page(target, frame_owner))
            return Errc::ebusy;
        if ((entry & pte::writable) && !get_type(target, PageType::writable, frame_owner)) {
            frames_.put_page(target);
            return Errc::ebusy;
        }
        return {};
    }
    if (target == table) {
        // A table mapping itself, read-only, holds no reference: it would keep itself alive.
        if (entry & pte::writable)
            return Errc::einval;
        return {};
    }
    if (!frames_.get_page(target, table_owner))
        return Errc::einval;
    if (auto typed = get_type(target, linked_type(level), table_owner); !typed) {
        const bool linear = typed.error() == Errc::einval && frames_.info(target).type == table_type(level);
        if (!linear || !acquire_linear(level, entry, table, table_owner)) {
            frames_.put_page(target);
            return typed.error();
        }
    }
    return {};
}

Result<void> PageTables::acquire_linear(unsigned level, std::uint64_t entry, Mfn table, DomainMemory& owner) {
    PageInfo& holder = frames_.info(table);
    PageInfo& target = frames_.info(pte::frame(entry));
    // Read-only, one level deep: a table that holds linear entries is never a linear target itself.
    if ((entry & pte::writable) || holder.linear_count < 0 || target.linear_count > 0 ||
        holder.linear_count == INT16_MAX || target.linear_count == INT16_MIN || holder.owner != owner.id)
        return Errc::einval;
    if (auto typed = get_type(pte::frame(entry), table_type(level), owner); !typed)
        return typed;
    ++holder.linear_count;
    --target.linear_count;
    return {};
}

void PageTables::release_entry(unsigned level, std::uint64_t entry, Mfn table) {
    if (!(entry & pte::present))
        return;
    const Mfn target = pte::frame(entry);
    if (level == 1) {
        if (entry & pte::writable)
            put_type(target);
        frames_.put_page(target);
        return;
    }
    if (target == table)
        return;
    if (frames_.info(target).type == table_type(level)) {
        ++frames_.info(target).linear_count;
        --frames_.info(table).linear_count;
    }
    put_page_and_type(target);
}

// Validates the table's entries from where an earlier step stopped. Takes every entry's references
// first and writes nothing, so that a failure leaves the table as the guest wrote it; stops, keeping
// what it took, when the budget runs out or a table below stops.
Result<void> PageTables::validate_table(Mfn table, unsigned level, DomainMemory& owner) {
    PageInfo& page = frames_.info(table);
    auto entries = table_entries(table);
    for (unsigned i = page.validated_entries; i < entries_per_table; ++i) {
        if ((level == 4 && is_hypervisor_l4_slot(i)) || !(entries[i] & pte::present))
            continue;
        // Present entries are what costs (each may validate a table below); a table's empty ones
        // are at most 512 quick looks. An entry is charged once it is done, so that going back
        // down to a partial table below costs nothing and every step makes progress.
        if (validation_budget_ == 0) {
            page.validated_entries = static_cast<std::uint16_t>(i);
            return validation_incomplete;
        }
        if (auto acquired = acquire_entry(level, entries[i], table, owner, owner); !acquired) {
            if (acquired.error() == validation_incomplete) {
                page.validated_entries = static_cast<std::uint16_t>(i);
                return acquired;
            }
            release_entries(table, level, i);
            return acquired;
        }
        if (validation_budget_ > 0)  // a table below may have spent it all on its own last entry
            --validation_budget_;
    }
    for (unsigned i = 0; i < entries_per_table; ++i)
        entries[i] = adjust_entry(level, entries[i]);
    if (level == 4) {
        for (unsigned slot = first_hypervisor_l4_slot; slot < first_hypervisor_l4_slot + hypervisor_l4_slot_count; ++slot)
            entries[slot] = frames_.platform().hypervisor_l4_entry(owner, slot);
    }
    return {};
}

// Drops the references a queued table's entries hold; a table they release is queued in turn, so
// the work is one table, however deep the hierarchy.
void PageTables::devalidate(PageInfo& page) {
    const Mfn table = frames_.mfn_of(page);
    const unsigned level = table_level(page.type);
    DomainMemory& owner = *frames_.domain(page.owner);
    requeue(page, owner.frames);
    page.flags &= static_cast<std::uint8_t>(~PageInfo::devalidating);
    page.flags |= PageInfo::was_table;
    frames_.defer_flush(owner);
    release_entries(table, level, entries_per_table);
    page.type = PageType::none;
    frames_.put_page(table);  // the queue's reference
}

// Moves a frame from whichever of its owner's lists holds it to `list`.
void PageTables::requeue(PageInfo& page, FrameList& list) {
    FrameList::node_algorithms::unlink(FrameList::value_traits::to_node_ptr(page));
    list.push_back(page);
}

Result<void> PageTables::update_entry(DomainMemory& table_owner, DomainMemory& frame_owner, Mfn table, unsigned index,
                                      std::uint64_t value, bool preserve_ad) {
    if (!frames_.is_valid(table) || index >= entries_per_table)
        return Errc::einval;
    PageInfo& page = frames_.info(table);
    if (page.owner != table_owner.id || !is_page_table(page.type) || page.type_count == 0)
        return Errc::einval;
    const unsigned level = table_level(page.type);
    if (level == 4 && is_hypervisor_l4_slot(index))
        return Errc::einval;
    // The table keeps its type for the whole update: taking the new entry's references can
    // devalidate other tables, and that cascade must not reach this one (Xen locks the page).
    if (page.type_count == UINT32_MAX || !frames_.get_page(table, table_owner))
        return Errc::einval;
    ++page.type_count;
    auto entries = table_entries(table);
    const std::uint64_t old = entries[index];
    if (preserve_ad)
        value = (value & ~(pte::accessed | pte::dirty)) | (old & (pte::accessed | pte::dirty));
    DomainMemory& mapped_owner = level == 1 ? frame_owner : table_owner;
    auto acquired = acquire_entry(level, value, table, table_owner, mapped_owner);
    if (acquired) {
        entries[index] = adjust_entry(level, value);
        if (old & pte::present)
            frames_.defer_flush(table_owner);  // owed before the release, which may free the frame
        release_entry(level, old, table);
    }
    put_page_and_type(table);
    return acquired;
}

Result<void> PageTables::pin(DomainMemory& domain, Mfn frame, unsigned level) {
    if (!frames_.is_valid(frame) || level < 1 || level > 4)
        return Errc::einval;
    if (frames_.info(frame).owner == domain.id && frames_.info(frame).has(PageInfo::pinned))
        return Errc::einval;
    if (auto typed = get_page_and_type(frame, table_type(level), domain); !typed)
        return typed;
    frames_.info(frame).flags |= PageInfo::pinned;
    return {};
}

Result<void> PageTables::unpin(DomainMemory& domain, Mfn frame) {
    if (!frames_.is_valid(frame) || frames_.info(frame).owner != domain.id)
        return Errc::einval;
    PageInfo& page = frames_.info(frame);
    if (!page.has(PageInfo::pinned))
        return Errc::einval;
    page.flags &= static_cast<std::uint8_t>(~PageInfo::pinned);
    put_page_and_type(frame);
    return {};
}

Result<void> PageTables::set_kernel_base(DomainMemory& domain, VcpuMmu& vcpu, Mfn frame) {
    auto replaced = replace_base(domain, vcpu.kernel_base, frame);
    if (replaced)
        frames_.platform().flush_tlb(domain);
    return replaced;
}

Result<void> PageTables::set_user_base(DomainMemory& domain, VcpuMmu& vcpu, Mfn frame) {
    return replace_base(domain, vcpu.user_base, frame.value != 0 ? std::optional{frame} : std::nullopt);
}

void PageTables::drop_bases(DomainMemory& domain, VcpuMmu& vcpu) {
    (void)replace_base(domain, vcpu.kernel_base, std::nullopt);  // letting go cannot fail
    (void)replace_base(domain, vcpu.user_base, std::nullopt);
}

Result<void> PageTables::replace_base(DomainMemory& domain, std::optional<Mfn>& base, std::optional<Mfn> frame) {
    if (frame) {
        if (auto typed = get_page_and_type(*frame, PageType::l4, domain); !typed)
            return typed;
    }
    if (base)
        put_page_and_type(*base);
    base = frame;
    return {};
}

Result<void> PageTables::set_gdt(DomainMemory& domain, VcpuMmu& vcpu, std::span<const std::uint64_t> gdt_frames,
                                  std::uint32_t entries) {
    const unsigned needed = (entries + entries_per_table - 1) / entries_per_table;
    if (entries > pvkit::abi::FIRST_RESERVED_GDT_ENTRY || gdt_frames.size() < needed)
        return Errc::einval;
    for (unsigned i = 0; i < needed; ++i) {
        const Mfn frame{gdt_frames[i]};
        if (!frames_.is_valid(frame) || !get_page_and_type(frame, PageType::seg_desc, domain)) {
            while (i-- > 0)
                put_page_and_type(Mfn{gdt_frames[i]});
            return Errc::einval;
        }
    }
    for (unsigned i = 0; i < vcpu.gdt_frame_count(); ++i)
        put_page_and_type(Mfn{vcpu.gdt_frames[i]});
    vcpu.gdt_frames = {};
    for (unsigned i = 0; i < needed; ++i)
        vcpu.gdt_frames[i] = gdt_frames[i];
    vcpu.gdt_entries = entries;
    frames_.platform().gdt_changed(domain, vcpu);
    return {};
}

bool PageTables::relinquish(DomainMemory& domain, std::span<VcpuMmu> vcpus, unsigned budget) {
    for (VcpuMmu& vcpu : vcpus) {
        for (std::optional<Mfn>* base : {&vcpu.kernel_base, &vcpu.user_base}) {
            if (*base) {
                put_page_and_type(**base);
                base->reset();
            }
        }
        (void)set_gdt(domain, vcpu, {}, 0);
    }
    for (; budget > 0; --budget) {
        // Queued tables first, so that the queue stays short.
        if (!domain.devalidating.empty()) {
            devalidate(domain.devalidating.front());
            continue;
        }
        if (domain.frames.empty())
            break;
        PageInfo& page = domain.frames.front();
        domain.frames.pop_front();
        domain.relinquished.push_back(page);
        // Held across the drops below, so the frame cannot be freed while it is being worked on.
        ++page.ref_count;
        const Mfn frame = frames_.mfn_of(page);
        if (page.has(PageInfo::partial))
            abandon_validation(page);
        if (page.has(PageInfo::pinned)) {
            page.flags &= static_cast<std::uint8_t>(~PageInfo::pinned);
            put_page_and_type(frame);
        }
        if (page.has(PageInfo::allocated)) {
            page.flags &= static_cast<std::uint8_t>(~PageInfo::allocated);
            frames_.put_page(frame);
        }
        frames_.put_page(frame);
    }
    return domain.frames.empty() && domain.devalidating.empty();
}

}  // namespace hv::mm
