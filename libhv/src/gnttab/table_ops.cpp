// The sub-ops about a table itself: setup_table, query_size, set_version, get_version,
// get_status_frames, swap_grant_ref.
#include <atomic>

#include "grant_access.hpp"

namespace hv::gnttab::detail {
namespace {

constexpr long failure(Errc error) { return xen_errno(error); }

// The table a sub-op names: the caller's (DOMID_SELF or its own id), or, for a privileged caller,
// another domain's. A missing domain is reported before a refused one, as Xen does.
GrantStatus named_table(Call& call, abi::domid_t dom, GrantTable*& table) {
    if (dom == abi::DOMID_SELF || dom == call.own.id().value) {
        table = &call.own;
        return GrantStatus::okay;
    }
    table = call.tables.find(DomId{dom});
    if (table == nullptr)
        return GrantStatus::bad_domain;
    if (!call.caller.domain.privileged)
        return GrantStatus::permission_denied;
    return GrantStatus::okay;
}

GrantStatus setup(Call& call, const abi::gnttab_setup_table& op) {
    GrantTable* table = nullptr;
    if (const GrantStatus named = named_table(call, op.dom, table); named != GrantStatus::okay)
        return named;
    if (op.nr_frames > table->max_frames)
        return GrantStatus::general_error;
    if (!call.tables.grow(*table, op.nr_frames))
        return GrantStatus::general_error;
    // A table never shrinks: a smaller nr_frames lists only the first frames.
    GrantStatus status = GrantStatus::okay;
    for (std::uint32_t i = 0; i < op.nr_frames; ++i) {
        if (!copy_to_guest(call.caller.memory, op.frame_list, abi::xen_pfn_t{table->storage.frames[i]}, i))
            status = GrantStatus::bad_virt_addr;
    }
    return status;
}

// Entry words are read and written one 32-bit word at a time, atomically, like every access to a
// shared entry: the guest may be writing them.
std::uint32_t load_word(std::uint32_t* word) { return std::atomic_ref<std::uint32_t>{*word}.load(std::memory_order_relaxed); }
void store_word(std::uint32_t* word, std::uint32_t value) {
    std::atomic_ref<std::uint32_t>{*word}.store(value, std::memory_order_relaxed);
}

GrantStatus swap(Call& call, const abi::gnttab_swap_grant_ref& op) {
    GrantTable& own = call.own;
    if (op.ref_a >= own.nr_entries() || op.ref_b >= own.nr_entries())
        return GrantStatus::bad_gntref;
    if (op.ref_a == op.ref_b)
        return GrantStatus::okay;
    if (own.storage.active[op.ref_a].pinned() || own.storage.active[op.ref_b].pinned())
        return GrantStatus::eagain;
    std::uint32_t* a = shared_entry(call.tables.frames(), own, op.ref_a);
    std::uint32_t* b = shared_entry(call.tables.frames(), own, op.ref_b);
    if (a == nullptr || b == nullptr)
        return GrantStatus::general_error;
    for (unsigned word = 0; word < 2; ++word) {
        const std::uint32_t was_a = load_word(a + word);
        store_word(a + word, load_word(b + word));
        store_word(b + word, was_a);
    }
    return GrantStatus::okay;
}

// The one structure a sub-op that takes no array passes (count must be 1): einval, efault.
template <class T>
Result<T> single_structure(Call& call, GuestHandle<void> uop, std::uint32_t count) {
    if (count != 1)
        return Errc::einval;
    return copy_from_guest(call.caller.memory, GuestHandle<T>{uop.address});
}

}  // namespace

long setup_table(Call& call, GuestHandle<void> uop, std::uint32_t count) {
    const GuestHandle<abi::gnttab_setup_table> handle{uop.address};
    const auto op = single_structure<abi::gnttab_setup_table>(call, uop, count);
    if (!op)
        return op.xen_errno();
    if (!is_guest_range(Vaddr{op->frame_list.address}, std::uint64_t{op->nr_frames} * sizeof(abi::xen_pfn_t)))
        return failure(Errc::efault);
    const std::int16_t status = status_code(setup(call, *op));
    return copy_field_to_guest(call.caller.memory, handle, 0, offsetof(abi::gnttab_setup_table, status), status)
        .xen_errno();
}

long query_size(Call& call, GuestHandle<void> uop, std::uint32_t count) {
    const GuestHandle<abi::gnttab_query_size> handle{uop.address};
    const auto copied = single_structure<abi::gnttab_query_size>(call, uop, count);
    if (!copied)
        return copied.xen_errno();
    abi::gnttab_query_size op = *copied;
    GrantTable* table = nullptr;
    const GrantStatus named = named_table(call, op.dom, table);
    if (named == GrantStatus::okay) {
        op.nr_frames = table->nr_frames;
        op.max_nr_frames = table->max_frames;
    }
    op.status = status_code(named);
    return copy_to_guest(call.caller.memory, handle, op).xen_errno();
}

// Version 2 is not provided: asking for it gives enosys, as Xen does when it is configured
// without it ("as before set_version existed"), and the structure reports version 1 in effect.
long set_version(Call& call, GuestHandle<void> uop) {
    const GuestHandle<abi::gnttab_set_version> handle{uop.address};
    const auto copied = copy_from_guest(call.caller.memory, handle);
    if (!copied)
        return copied.xen_errno();
    const long result = copied->version == 1   ? 0
                        : copied->version == 2 ? failure(Errc::enosys)
                                               : failure(Errc::einval);
    if (!copy_to_guest(call.caller.memory, handle, abi::gnttab_set_version{1}))
        return failure(Errc::efault);
    return result;
}

long get_version(Call& call, GuestHandle<void> uop) {
    const GuestHandle<abi::gnttab_get_version> handle{uop.address};
    const auto copied = copy_from_guest(call.caller.memory, handle);
    if (!copied)
        return copied.xen_errno();
    GrantTable* table = nullptr;
    switch (named_table(call, copied->dom, table)) {
    case GrantStatus::okay:
        break;
    case GrantStatus::bad_domain:
        return failure(Errc::esrch);
    default:
        return failure(Errc::eperm);
    }
    return copy_field_to_guest(call.caller.memory, handle, 0, offsetof(abi::gnttab_get_version, version),
                               std::uint32_t{1})
        .xen_errno();
}

// Version 1 has no status frames: asking for any is general_error (for none, okay), as in Xen.
long get_status_frames(Call& call, GuestHandle<void> uop, std::uint32_t count) {
    const GuestHandle<abi::gnttab_get_status_frames> handle{uop.address};
    const auto copied = single_structure<abi::gnttab_get_status_frames>(call, uop, count);
    if (!copied)
        return copied.xen_errno();
    GrantTable* table = nullptr;
    GrantStatus status = named_table(call, copied->dom, table);
    if (status == GrantStatus::okay && copied->nr_frames > 0)
        status = GrantStatus::general_error;
    return copy_field_to_guest(call.caller.memory, handle, 0, offsetof(abi::gnttab_get_status_frames, status),
                               status_code(status))
        .xen_errno();
}

void swap_grant_ref(Call& call, abi::gnttab_swap_grant_ref& op) { op.status = status_code(swap(call, op)); }

}  // namespace hv::gnttab::detail
