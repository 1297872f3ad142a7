// mmu_update, mmuext_op and update_va_mapping: decode the guest's request, then apply it.
#include <algorithm>
#include <array>
#include <cstring>

#include <hv/mmu_ops.hpp>

namespace hv::mm {
namespace abi = pvkit::abi;
namespace {

constexpr long failure(Errc error) { return xen_errno(error); }

// The domains a batch acts for, from its foreigndom argument: the low 16 bits name the owner of
// the frames being mapped (DOMID_SELF: the caller), the high 16 bits, when not 0, the owner of the
// page tables plus one. Naming another domain takes privilege; naming oneself by number is
// refused, as Xen does.
struct Owners {
    DomainMemory* frames;
    DomainMemory* tables;
};

Result<DomainMemory*> foreign_domain(FrameTable& frames, MmuCaller& caller, std::uint32_t id) {
    if (id == abi::DOMID_SELF)
        return &caller.domain;
    if (id == caller.domain.id.value || id >= abi::DOMID_FIRST_RESERVED)
        return Errc::esrch;
    DomainMemory* domain = frames.domain(DomId{static_cast<abi::domid_t>(id)});
    if (domain == nullptr)
        return Errc::esrch;
    if (!caller.domain.privileged)
        return Errc::eperm;
    return domain;
}

Result<Owners> decode_owners(FrameTable& frames, MmuCaller& caller, std::uint32_t foreigndom) {
    auto frame_owner = foreign_domain(frames, caller, foreigndom & 0xFFFF);
    if (!frame_owner)
        return frame_owner.error();
    if ((foreigndom >> 16) == 0)
        return Owners{*frame_owner, &caller.domain};
    auto table_owner = foreign_domain(frames, caller, (foreigndom >> 16) - 1);
    if (!table_owner)
        return table_owner.error();
    return Owners{*frame_owner, *table_owner};
}

// The domains whose queued devalidation a call finishes: the owners it acts for, and the caller.
bool finish_for(PageTables& tables, MmuCaller& caller, const Owners& owners) {
    return finish_devalidation(tables, caller.preemption, {owners.tables, owners.frames, &caller.domain});
}

// Runs `apply` on each element of a guest array, with Xen's batch rules: stop at the first
// failure; let others run between elements, continuing later; write back how many were done.
//
// What an element queued for devalidation is finished before the next element runs and before the
// batch returns (Xen's old_guest_table). Cut short by preemption, the batch continues with the
// elements after it, and the continuation finishes the queue first. When no element is left (the
// last one, or a failure, which ends the batch), the continuation is {result, batch_continued}: the
// result where the list was, no element left (as Xen passes it in place of foreigndom, which here
// still names the domains whose queue is finished). A continuation with elements left always has
// at least one, so the two never meet.
template <class Element, class Apply>
long run_batch(PageTables& tables, MmuCaller& caller, const Owners& owners, std::uint64_t hypercall,
               GuestHandle<Element> list, std::uint32_t count, GuestHandle<std::uint32_t> done_count,
               std::uint32_t foreigndom, Apply apply) {
    // A queue left by an earlier part of this batch (or by anyone) goes first; cut short, the call
    // is issued again exactly as it came.
    if (!finish_for(tables, caller, owners)) {
        caller.continuation = {true, {hypercall, {list.address, count, done_count.address, foreigndom, 0}}};
        return 0;
    }
    if (count == batch_continued)  // every element was done; only the devalidation was left
        return static_cast<long>(list.address);
    std::uint32_t done_before = 0;
    if (count & batch_continued) {
        count &= ~batch_continued;
        if (done_count.address != 0) {
            if (auto previous = copy_from_guest(caller.memory, done_count))
                done_before = *previous;
        }
    }
    const auto continue_from = [&](std::uint32_t next) {
        caller.continuation = {true,
                               {hypercall,
                                {list.address + next * sizeof(Element), (count - next) | batch_continued,
                                 done_count.address, foreigndom, 0}}};
    };
    // Elements are read a few at a time; a read that fails falls back to one element, so the
    // batch stops exactly at the first element the guest cannot show.
    std::array<Element, 16> buffer;
    std::uint32_t buffered_from = 0, buffered = 0;
    long result = 0;
    std::uint32_t done = 0;
    while (done < count) {
        if (done > 0 && caller.preemption.pending()) {
            continue_from(done);
            break;
        }
        if (done == buffered_from + buffered) {
            buffered_from = done;
            buffered = std::min<std::uint32_t>(buffer.size(), count - done);
            if (!copy_array_from_guest(caller.memory, list, done, std::span{buffer}.first(buffered))) {
                buffered = 1;
                if (const auto single = copy_array_from_guest(caller.memory, list, done, std::span{buffer}.first(1));
                    !single) {
                    result = single.xen_errno();
                    break;
                }
            }
        }
        result = apply(buffer[done - buffered_from]);
        if (result == xen_errno(validation_incomplete)) {  // this element again, later
            continue_from(done);
            result = 0;
            break;
        }
        if (result == 0)
            ++done;
        if (!finish_for(tables, caller, owners)) {
            if (result == 0 && done < count)
                continue_from(done);
            else
                caller.continuation = {true,
                                       {hypercall,
                                        {static_cast<std::uint64_t>(result), batch_continued, done_count.address,
                                         foreigndom, 0}}};
            result = 0;
            break;
        }
        if (result != 0)
            break;
    }
    if (done_count.address != 0 && !copy_to_guest(caller.memory, done_count, done_before + done) && result == 0)
        result = failure(Errc::efault);
    return result;
}

// mmu_update on a frame that is not a page table: a plain write, if the frame can be writable.
long write_plain(PageTables& tables, DomainMemory& owner, Mfn frame, unsigned index, std::uint64_t value) {
    FrameTable& frames = tables.frames();
    if (!frames.get_page(frame, owner))
        return failure(Errc::einval);
    if (!tables.get_type(frame, PageType::writable, owner)) {
        frames.put_page(frame);
        return failure(Errc::einval);
    }
    std::memcpy(frames.platform().map(frame) + index * sizeof(value), &value, sizeof(value));
    tables.put_type(frame);
    frames.put_page(frame);
    return 0;
}

long apply_mmu_update(PageTables& tables, MmuCaller& caller, const Owners& owners, const abi::mmu_update& request) {
    FrameTable& frames = tables.frames();
    const Mfn frame{request.ptr >> 12};
    const unsigned index = static_cast<unsigned>((request.ptr & (page_size - 1)) >> 3);
    switch (request.ptr & 7) {
    case abi::MMU_NORMAL_PT_UPDATE:
    case abi::MMU_PT_UPDATE_PRESERVE_AD:
    case abi::MMU_PT_UPDATE_NO_TRANSLATE: {
        if (!frames.is_valid(frame))
            return failure(Errc::einval);
        const PageInfo& page = frames.info(frame);
        if (is_page_table(page.type) && page.type_count > 0) {
            const bool preserve_ad = (request.ptr & 7) == abi::MMU_PT_UPDATE_PRESERVE_AD;
            return tables.update_entry(*owners.tables, *owners.frames, frame, index, request.val, preserve_ad)
                .xen_errno();
        }
        return write_plain(tables, *owners.tables, frame, index, request.val);
    }
    case abi::MMU_MACHPHYS_UPDATE:
        if (owners.tables != &caller.domain)
            return failure(Errc::eperm);
        if (!frames.is_valid(frame) || frames.info(frame).owner != owners.frames->id)
            return failure(Errc::einval);
        frames.set_machine_to_phys(frame, request.val);
        return 0;
    default:
        return failure(Errc::enosys);
    }
}

// The vCPUs named by a TLB operation's bitmap: only checked to be readable, since every flush here
// covers the whole domain.
long check_vcpu_mask(MmuCaller& caller, std::uint64_t address) {
    return copy_from_guest(caller.memory, GuestHandle<std::uint64_t>{address}) ? 0 : failure(Errc::efault);
}

long apply_mmuext_op(PageTables& tables, MmuCaller& caller, DomainMemory& owner, const abi::mmuext_op& op) {
    FrameTable& frames = tables.frames();
    const bool foreign = &owner != &caller.domain;
    const Mfn frame{op.arg1.mfn};
    switch (op.cmd) {
    case abi::MMUEXT_PIN_L1_TABLE:
    case abi::MMUEXT_PIN_L2_TABLE:
    case abi::MMUEXT_PIN_L3_TABLE:
    case abi::MMUEXT_PIN_L4_TABLE:
        return tables.pin(owner, frame, op.cmd - abi::MMUEXT_PIN_L1_TABLE + 1).xen_errno();
    case abi::MMUEXT_UNPIN_TABLE:
        return tables.unpin(owner, frame).xen_errno();
    case abi::MMUEXT_NEW_BASEPTR:
        return foreign ? failure(Errc::eperm) : tables.set_kernel_base(owner, caller.vcpu, frame).xen_errno();
    case abi::MMUEXT_NEW_USER_BASEPTR:
        return foreign ? failure(Errc::eperm) : tables.set_user_base(owner, caller.vcpu, frame).xen_errno();
    case abi::MMUEXT_TLB_FLUSH_LOCAL:
    case abi::MMUEXT_INVLPG_LOCAL:
    case abi::MMUEXT_TLB_FLUSH_ALL:
    case abi::MMUEXT_INVLPG_ALL:
        if (foreign)
            return failure(Errc::eperm);
        frames.platform().flush_tlb(caller.domain);
        return 0;
    case abi::MMUEXT_TLB_FLUSH_MULTI:
    case abi::MMUEXT_INVLPG_MULTI:
        if (foreign)
            return failure(Errc::eperm);
        if (const long checked = check_vcpu_mask(caller, op.arg2.vcpumask.address); checked != 0)
            return checked;
        frames.platform().flush_tlb(caller.domain);
        return 0;
    case abi::MMUEXT_FLUSH_CACHE:
    case abi::MMUEXT_FLUSH_CACHE_GLOBAL:
        if (!caller.domain.privileged)
            return failure(Errc::eacces);
        frames.platform().flush_caches();
        return 0;
    case abi::MMUEXT_SET_LDT: {
        const std::uint64_t base = op.arg2.nr_ents == 0 ? 0 : op.arg1.linear_addr;
        if (foreign)
            return failure(Errc::eperm);
        if ((base & (page_size - 1)) != 0 || op.arg2.nr_ents > max_ldt_entries ||
            !is_guest_range(Vaddr{base}, std::uint64_t{op.arg2.nr_ents} * 8))
            return failure(Errc::einval);
        caller.vcpu.ldt_base = base;
        caller.vcpu.ldt_entries = op.arg2.nr_ents;
        return 0;
    }
    case abi::MMUEXT_CLEAR_PAGE:
    case abi::MMUEXT_COPY_PAGE: {
        const Mfn source{op.arg2.src_mfn};
        const bool copy = op.cmd == abi::MMUEXT_COPY_PAGE;
        if (copy && !frames.get_page(source, owner))
            return failure(Errc::einval);
        const auto refuse = [&](bool holds_destination) {
            if (holds_destination)
                frames.put_page(frame);
            if (copy)
                frames.put_page(source);
            return failure(Errc::einval);
        };
        if (!frames.get_page(frame, owner))
            return refuse(false);
        if (!tables.get_type(frame, PageType::writable, owner))
            return refuse(true);
        std::byte* destination = frames.platform().map(frame);
        if (copy) {
            std::memmove(destination, frames.platform().map(source), page_size);  // source may be destination
            frames.put_page(source);
        } else {
            std::memset(destination, 0, page_size);
        }
        tables.put_type(frame);
        frames.put_page(frame);
        return 0;
    }
    case abi::MMUEXT_MARK_SUPER:
    case abi::MMUEXT_UNMARK_SUPER:
        return failure(Errc::eopnotsupp);
    default:
        return failure(Errc::enosys);
    }
}

// A single update whose validation stopped, or that could not start for queued devalidation, is
// issued again, unchanged, to go on with it.
long continue_if_incomplete(MmuCaller& caller, std::uint64_t hypercall, std::initializer_list<std::uint64_t> args,
                            long result) {
    if (result != xen_errno(validation_incomplete))
        return result;
    caller.continuation = {true, {hypercall, {}}};
    std::copy(args.begin(), args.end(), caller.continuation.registers.args);
    return 0;
}

long update_mapping(PageTables& tables, MmuCaller& caller, DomainMemory& frame_owner, std::uint64_t address,
                    std::uint64_t value, std::uint64_t flags) {
    const PageTables::ValidationStep step{tables};
    const std::uint64_t flush = flags & abi::UVMF_FLUSHTYPE_MASK;
    const std::uint64_t scope = flags & ~std::uint64_t{abi::UVMF_FLUSHTYPE_MASK};
    if (flush == abi::UVMF_FLUSHTYPE_MASK)
        return failure(Errc::einval);
    if (flush != abi::UVMF_NONE && scope != abi::UVMF_LOCAL && scope != abi::UVMF_ALL) {
        if (const long checked = check_vcpu_mask(caller, scope); checked != 0)
            return checked;
    }
    const auto slot = tables.locate_l1_entry(caller.vcpu, address);
    if (!slot)
        return slot.xen_errno();
    const long result =
        tables.update_entry(caller.domain, frame_owner, slot->table, slot->index, value, false).xen_errno();
    if (result == 0 && flush != abi::UVMF_NONE)
        tables.frames().platform().flush_tlb(caller.domain);
    return result;
}

}  // namespace

long mmu_update(PageTables& tables, MmuCaller& caller, const hypercall_args::mmu_update& args) {
    const PageTables::ValidationStep step{tables};
    const auto owners = decode_owners(tables.frames(), caller, args.foreigndom);
    if (!owners)
        return owners.xen_errno();
    return run_batch(tables, caller, *owners, abi::HYPERVISOR_mmu_update, args.req, args.count, args.success_count,
                     args.foreigndom,
                     [&](const abi::mmu_update& request) { return apply_mmu_update(tables, caller, *owners, request); });
}

long mmuext_op(PageTables& tables, MmuCaller& caller, const hypercall_args::mmuext_op& args) {
    const PageTables::ValidationStep step{tables};
    const auto owners = decode_owners(tables.frames(), caller, args.foreigndom & 0xFFFF);
    if (!owners)
        return owners.xen_errno();
    return run_batch(tables, caller, *owners, abi::HYPERVISOR_mmuext_op, args.op, args.count, args.success_count,
                     args.foreigndom,
                     [&](const abi::mmuext_op& op) { return apply_mmuext_op(tables, caller, *owners->frames, op); });
}

bool finish_devalidation(PageTables& tables, Preemption& preemption, std::initializer_list<DomainMemory*> domains) {
    bool first = true;  // one table whatever others do, so that every call makes progress
    for (DomainMemory* domain : domains) {
        while (!domain->devalidating.empty()) {
            if (!first && preemption.pending())
                return false;
            first = false;
            (void)tables.drain(*domain, 1);
        }
    }
    return true;
}

// update_va_mapping changes one L1 entry, which queues nothing; it finishes what is queued on the
// domains it acts for before it starts (issued again unchanged when cut short), so that it never
// meets a table on its way out.
long update_va_mapping(PageTables& tables, MmuCaller& caller, const hypercall_args::update_va_mapping& args) {
    const long result = finish_devalidation(tables, caller.preemption, {&caller.domain})
                            ? update_mapping(tables, caller, caller.domain, args.va, args.val, args.flags)
                            : xen_errno(validation_incomplete);
    return continue_if_incomplete(caller, abi::HYPERVISOR_update_va_mapping, {args.va, args.val, args.flags}, result);
}

long update_va_mapping_otherdomain(PageTables& tables, MmuCaller& caller,
                                   const hypercall_args::update_va_mapping_otherdomain& args) {
    const auto owner = foreign_domain(tables.frames(), caller, args.domid);
    if (!owner)
        return owner.xen_errno();
    const long result = finish_devalidation(tables, caller.preemption, {&caller.domain, *owner})
                            ? update_mapping(tables, caller, **owner, args.va, args.val, args.flags)
                            : xen_errno(validation_incomplete);
    return continue_if_incomplete(caller, abi::HYPERVISOR_update_va_mapping_otherdomain,
                                  {args.va, args.val, args.flags, args.domid}, result);
}

}  // namespace hv::mm
