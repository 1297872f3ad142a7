// GNTTABOP_copy: the hypervisor copies between two frames, each named by a grant reference of
// another domain (or the caller's own) or by a frame number of the caller's own.
//
// While a side is in use it holds what a mapping would: a pin on its grant (so the granter sees it
// in use and cannot reuse the frame meanwhile), a general reference on the frame, and for the
// destination a writable type reference (so that no page table or descriptor page is ever written
// this way). A batch keeps a side's claim for the next structure that names the same side (Xen's
// gnttab_copy_buf_valid): a run of copies from one grant, or into one frame, pays for it once.
// Every claim is released before the hypercall returns or stops.
#include <cstring>

#include "grant_access.hpp"

namespace hv::gnttab::detail {
namespace {

bool names(const CopySide& side, const abi::gnttab_copy_ptr& ptr, bool by_gref) {
    return side.claimed && side.by_gref == by_gref && side.domid == ptr.domid &&
           side.name == (by_gref ? std::uint64_t{ptr.u.ref} : ptr.u.gmfn);
}

// The domain a side names. A frame number may only name the caller's own frames, and only as
// DOMID_SELF (Xen's rule); a grant reference names any domain's grant, the caller's included.
GrantStatus find_domain(Call& call, const abi::gnttab_copy_ptr& ptr, bool by_gref, CopySide& side) {
    if (!by_gref && ptr.domid != abi::DOMID_SELF)
        return GrantStatus::permission_denied;
    side.domain = ptr.domid == abi::DOMID_SELF ? &call.own : call.tables.find(DomId{ptr.domid});
    return side.domain != nullptr ? GrantStatus::okay : GrantStatus::bad_domain;
}

GrantStatus claim(Call& call, const abi::gnttab_copy_ptr& ptr, bool by_gref, bool readonly, CopySide& side) {
    FrameTable& frames = call.tables.frames();
    DomainMemory& owner = side.domain->domain;
    side.claimed = true;
    side.by_gref = by_gref;
    side.domid = ptr.domid;
    side.readonly = readonly;
    if (by_gref) {
        side.name = ptr.u.ref;
        const GrantStatus pinned =
            pin_grant(frames, *side.domain, ptr.u.ref, call.own.id(), readonly, Purpose::copy, side.frame);
        if (pinned != GrantStatus::okay)
            return pinned;
        side.pinned = true;
        // An entry pinned earlier names the frame it named then, which its owner may since have
        // given back: the frame must still be the granter's.
        if (!frames.get_page(side.frame, owner))
            return GrantStatus::bad_domain;
    } else {
        side.name = ptr.u.gmfn;
        side.frame = Mfn{ptr.u.gmfn};
        if (!frames.get_page(side.frame, owner))
            return GrantStatus::bad_page;
    }
    side.referenced = true;
    if (!readonly) {
        if (!call.tables.page_tables().get_type(side.frame, mm::PageType::writable, owner))
            return GrantStatus::general_error;
        side.typed = true;
    }
    return GrantStatus::okay;
}

void release_side(Call& call, CopySide& side) {
    FrameTable& frames = call.tables.frames();
    if (side.typed)
        call.tables.page_tables().put_type(side.frame);
    if (side.referenced)
        frames.put_page(side.frame);
    if (side.pinned)
        unpin_grant(frames, *side.domain, static_cast<std::uint32_t>(side.name), side.readonly);
    side = CopySide{};
}

}  // namespace

GrantStatus CopyBatch::copy_one(const abi::gnttab_copy& op) {
    const bool source_gref = op.flags & abi::GNTCOPY_source_gref;
    const bool dest_gref = op.flags & abi::GNTCOPY_dest_gref;
    const bool keep_source = names(source_, op.source, source_gref);
    const bool keep_dest = names(dest_, op.dest, dest_gref);
    // Xen's order: the domains, the source, the destination, then the bounds.
    if (!keep_source) {
        release_side(call_, source_);
        if (const GrantStatus found = find_domain(call_, op.source, source_gref, source_); found != GrantStatus::okay)
            return found;
    }
    if (!keep_dest) {
        release_side(call_, dest_);
        if (const GrantStatus found = find_domain(call_, op.dest, dest_gref, dest_); found != GrantStatus::okay)
            return found;
    }
    if (!keep_source) {
        if (const GrantStatus claimed = claim(call_, op.source, source_gref, true, source_);
            claimed != GrantStatus::okay)
            return claimed;
    }
    if (!keep_dest) {
        if (const GrantStatus claimed = claim(call_, op.dest, dest_gref, false, dest_); claimed != GrantStatus::okay)
            return claimed;
    }
    if (std::uint32_t{op.source.offset} + op.len > mm::page_size || std::uint32_t{op.dest.offset} + op.len > mm::page_size)
        return GrantStatus::bad_copy_arg;
    mm::MemoryPlatform& platform = call_.tables.frames().platform();
    // memmove: both sides may be the same frame.
    std::memmove(platform.map(dest_.frame) + op.dest.offset, platform.map(source_.frame) + op.source.offset, op.len);
    return GrantStatus::okay;
}

void CopyBatch::copy(abi::gnttab_copy& op) {
    const GrantStatus copied = copy_one(op);
    if (copied != GrantStatus::okay)
        release();
    op.status = status_code(copied);
}

void CopyBatch::release() {
    release_side(call_, dest_);
    release_side(call_, source_);
}

}  // namespace hv::gnttab::detail
