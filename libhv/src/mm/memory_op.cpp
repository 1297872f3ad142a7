// memory_op: decode the reservation, then allocate or give back frames one extent at a time.
#include <hv/memory_op.hpp>

namespace hv::mm {
namespace abi = pvkit::abi;
namespace {

constexpr long failure(Errc error) { return xen_errno(error); }

// The domain a sub-op names: itself, or another one for a privileged caller.
Result<DomainMemory*> target_domain(FrameTable& frames, MmuCaller& caller, abi::domid_t id) {
    if (id == abi::DOMID_SELF || id == caller.domain.id.value)
        return &caller.domain;
    DomainMemory* domain = frames.domain(DomId{id});
    if (domain == nullptr)
        return Errc::esrch;
    if (!caller.domain.privileged)
        return Errc::eperm;
    return domain;
}

// One extent of each reservation sub-op; false stops the batch at this extent.
bool increase_one(PageTables& tables, MmuCaller& caller, DomainMemory& domain, GuestHandle<abi::xen_pfn_t> list,
                  std::uint64_t extent) {
    FrameTable& frames = tables.frames();
    const auto frame = frames.allocate(domain);
    if (!frame)
        return false;
    if (list.address != 0 && !copy_to_guest(caller.memory, list, abi::xen_pfn_t{frame->value}, extent)) {
        (void)frames.release(domain, *frame);
        return false;
    }
    return true;
}

bool populate_one(PageTables& tables, MmuCaller& caller, DomainMemory& domain, GuestHandle<abi::xen_pfn_t> list,
                  std::uint64_t extent) {
    FrameTable& frames = tables.frames();
    const auto gfn = copy_from_guest(caller.memory, list, extent);
    if (!gfn)
        return false;
    const auto frame = frames.allocate(domain);
    if (!frame)
        return false;
    if (!copy_to_guest(caller.memory, list, abi::xen_pfn_t{frame->value}, extent)) {
        (void)frames.release(domain, *frame);
        return false;
    }
    frames.set_machine_to_phys(*frame, *gfn);
    return true;
}

// A PV guest names its frames by machine frame number. A frame given back leaves with its pin; it
// is freed once nothing maps it any more.
bool decrease_one(PageTables& tables, MmuCaller& caller, DomainMemory& domain, GuestHandle<abi::xen_pfn_t> list,
                  std::uint64_t extent) {
    FrameTable& frames = tables.frames();
    const auto gmfn = copy_from_guest(caller.memory, list, extent);
    if (!gmfn)
        return false;
    const Mfn frame{*gmfn};
    if (!frames.is_valid(frame) || frames.info(frame).owner != domain.id || !frames.info(frame).has(PageInfo::allocated) ||
        frames.info(frame).has(PageInfo::shared))
        return false;
    if (frames.info(frame).has(PageInfo::pinned))
        (void)tables.unpin(domain, frame);
    return static_cast<bool>(frames.release(domain, frame));
}

using ExtentStep = bool (*)(PageTables&, MmuCaller&, DomainMemory&, GuestHandle<abi::xen_pfn_t>, std::uint64_t);

long reservation(PageTables& tables, MmuCaller& caller, unsigned command, std::uint64_t start_extent,
                 GuestHandle<void> argument, ExtentStep step) {
    const auto request = copy_from_guest(caller.memory, GuestHandle<abi::xen_memory_reservation>{argument.address});
    if (!request)
        return request.xen_errno();
    if (start_extent > request->nr_extents)
        return failure(Errc::einval);
    const auto domain = target_domain(tables.frames(), caller, request->domid);
    if (!domain)
        return domain.xen_errno();
    if (request->extent_order != 0)
        return static_cast<long>(start_extent);  // nothing larger than a page is handed out
    const auto continue_from = [&](std::uint64_t extent) {
        caller.continuation = {
            true, {abi::HYPERVISOR_memory_op, {command | (extent << memop_extent_shift), argument.address}}};
        return static_cast<long>(extent);
    };
    // A frame given back with its pin may queue a hierarchy for devalidation: it is finished before
    // the next extent and before the call returns, as mmuext_op's UNPIN_TABLE does; a continuation
    // finishes what was cut short before it goes on.
    if (!finish_devalidation(tables, caller.preemption, {&caller.domain, *domain}))
        return continue_from(start_extent);
    std::uint64_t extent = start_extent;
    for (; extent < request->nr_extents; ++extent) {
        if (extent > start_extent && caller.preemption.pending())
            return continue_from(extent);
        if (!step(tables, caller, **domain, request->extent_start, extent))
            break;
        if (!finish_devalidation(tables, caller.preemption, {&caller.domain, *domain}))
            return continue_from(extent + 1);
    }
    return static_cast<long>(extent);
}

long reservation_size(PageTables& tables, MmuCaller& caller, GuestHandle<void> argument, bool maximum) {
    const auto id = copy_from_guest(caller.memory, GuestHandle<abi::domid_t>{argument.address});
    if (!id)
        return id.xen_errno();
    const auto domain = target_domain(tables.frames(), caller, *id);
    if (!domain)
        return domain.xen_errno();
    return static_cast<long>(maximum ? (*domain)->max_pages : (*domain)->tot_pages);
}

}  // namespace

long memory_op(PageTables& tables, MmuCaller& caller, const hypercall_args::memory_op& args) {
    const unsigned command = static_cast<unsigned>(args.cmd & memop_command_mask);
    const std::uint64_t start_extent = args.cmd >> memop_extent_shift;
    const bool resumable = command == abi::XENMEM_increase_reservation ||
                           command == abi::XENMEM_decrease_reservation || command == abi::XENMEM_populate_physmap;
    if (start_extent != 0 && !resumable)
        return failure(Errc::einval);
    switch (command) {
    case abi::XENMEM_increase_reservation:
        return reservation(tables, caller, command, start_extent, args.arg, increase_one);
    case abi::XENMEM_decrease_reservation:
        return reservation(tables, caller, command, start_extent, args.arg, decrease_one);
    case abi::XENMEM_populate_physmap:
        return reservation(tables, caller, command, start_extent, args.arg, populate_one);
    case abi::XENMEM_maximum_ram_page:
        return static_cast<long>(tables.frames().frame_count());
    case abi::XENMEM_machphys_mapping: {
        // Where every 64-bit PV guest finds the read-only M2P: a fixed part of the ABI, which the
        // platform maps (its frames are the frame table's machine_to_phys).
        constexpr abi::xen_machphys_mapping mapping{abi::MACH2PHYS_VIRT_START, abi::MACH2PHYS_VIRT_END,
                                                    abi::MACH2PHYS_NR_ENTRIES - 1};
        return copy_to_guest(caller.memory, GuestHandle<abi::xen_machphys_mapping>{args.arg.address}, mapping)
                   ? 0
                   : failure(Errc::efault);
    }
    case abi::XENMEM_current_reservation:
    case abi::XENMEM_maximum_reservation:
        return reservation_size(tables, caller, args.arg, command == abi::XENMEM_maximum_reservation);
    default:
        return failure(Errc::enosys);
    }
}

}  // namespace hv::mm
