// grant_table_op: decode the command, then run the sub-op over the guest's array of structures.
#include <array>

#include "grant_access.hpp"

namespace hv::gnttab {
using namespace detail;

namespace {

constexpr long failure(Errc error) { return xen_errno(error); }

// How a sub-op reports back: the whole structure (map_grant_ref, which has outputs besides its
// status) or only its status, as Xen writes them.
enum class WriteBack { whole, status };

// Runs `apply` on each of `count` structures at `list` with Xen's batch rules: each structure is
// read just before it is applied (an earlier one may have changed guest memory), carries its own
// status, and is written back at once; a structure that cannot be read or written back ends the
// hypercall with -EFAULT. `settle` finishes what applied structures left pending: after every
// `chunk` of them, before the batch stops to let others run (asking to be issued again for the
// rest), and at the end.
template <class Op, class Apply, class Settle>
long run_batch(Call& call, std::uint32_t cmd, GuestHandle<void> uop, std::uint32_t count, WriteBack write_back,
               unsigned chunk, Apply apply, Settle settle) {
    mm::MmuCaller& caller = call.caller;
    const GuestHandle<Op> list{uop.address};
    if (!is_guest_range(Vaddr{list.address}, std::uint64_t{count} * sizeof(Op)))
        return failure(Errc::efault);
    long result = 0;
    for (std::uint32_t done = 0; done < count; ++done) {
        if (done > 0 && caller.preemption.pending()) {
            settle();
            caller.continuation = {true,
                                   {abi::HYPERVISOR_grant_table_op,
                                    {cmd, list.address + std::uint64_t{done} * sizeof(Op), count - done, 0, 0}}};
            break;
        }
        if (done > 0 && done % chunk == 0)
            settle();
        Op applied;  // read straight into place: this is the hot path of every grant operation
        if (const auto read = copy_array_from_guest(caller.memory, list, done, std::span{&applied, 1}); !read) {
            result = read.xen_errno();
            break;
        }
        apply(applied);
        const Result<void> written = write_back == WriteBack::whole
                                         ? copy_to_guest(caller.memory, list, applied, done)
                                         : copy_field_to_guest(caller.memory, list, done, offsetof(Op, status),
                                                               applied.status);
        if (!written) {
            result = written.xen_errno();
            break;
        }
    }
    settle();
    return result;
}

// No chunks: settle only before the batch stops and at its end.
constexpr unsigned whole_batch = UINT32_MAX;
constexpr auto nothing_pending = [] {};

// unmap_grant_ref and unmap_and_replace: the mappings of a chunk go first, then one TLB flush,
// then their pins (see grant_table.cpp).
template <class Op>
long unmap_batch(Call& call, std::uint32_t cmd, GuestHandle<void> uop, std::uint32_t count) {
    std::array<UnmapDone, unmap_chunk> pending;
    unsigned nr_pending = 0;
    const auto settle = [&] {
        if (nr_pending == 0)
            return;
        call.tables.frames().flush_owed();
        for (unsigned i = 0; i < nr_pending; ++i)
            complete_unmap(call, pending[i]);
        nr_pending = 0;
    };
    const auto apply = [&](Op& op) {
        std::optional<UnmapDone> done;
        if constexpr (requires { op.new_addr; })
            op.status = status_code(unmap_host_mapping(call, op.handle, op.host_addr, 0, op.new_addr, done));
        else
            op.status = status_code(unmap_host_mapping(call, op.handle, op.host_addr, op.dev_bus_addr, 0, done));
        if (done)
            pending[nr_pending++] = *done;
    };
    return run_batch<Op>(call, cmd, uop, count, WriteBack::status, unmap_chunk, apply, settle);
}

}  // namespace

long grant_table_op(GrantTables& tables, mm::MmuCaller& caller, const hypercall_args::grant_table_op& args) {
    if (static_cast<std::int32_t>(args.count) < 0)
        return failure(Errc::einval);
    const std::uint32_t cmd = args.cmd & command_mask;
    // Only cache_flush keeps continuation state in the command's upper bits.
    if ((args.cmd & ~command_mask) != 0 && cmd != abi::GNTTABOP_cache_flush)
        return failure(Errc::einval);
    GrantTable* own = tables.find(caller.domain.id);
    if (own == nullptr)
        return failure(Errc::enosys);  // grant tables are not offered to this domain
    Call call{tables, *own, caller};
    const GuestHandle<void> uop = args.uop;
    switch (cmd) {
    case abi::GNTTABOP_map_grant_ref:
        return run_batch<abi::gnttab_map_grant_ref>(
            call, cmd, uop, args.count, WriteBack::whole, whole_batch,
            [&](abi::gnttab_map_grant_ref& op) { map_grant_ref(call, op); }, nothing_pending);
    case abi::GNTTABOP_unmap_grant_ref:
        return unmap_batch<abi::gnttab_unmap_grant_ref>(call, cmd, uop, args.count);
    case abi::GNTTABOP_unmap_and_replace:
        return unmap_batch<abi::gnttab_unmap_and_replace>(call, cmd, uop, args.count);
    case abi::GNTTABOP_copy: {
        CopyBatch claims{call};
        return run_batch<abi::gnttab_copy>(
            call, cmd, uop, args.count, WriteBack::status, whole_batch,
            [&](abi::gnttab_copy& op) { claims.copy(op); }, [&] { claims.release(); });
    }
    case abi::GNTTABOP_swap_grant_ref:
        return run_batch<abi::gnttab_swap_grant_ref>(
            call, cmd, uop, args.count, WriteBack::status, whole_batch,
            [&](abi::gnttab_swap_grant_ref& op) { swap_grant_ref(call, op); }, nothing_pending);
    case abi::GNTTABOP_setup_table:
        return setup_table(call, uop, args.count);
    case abi::GNTTABOP_query_size:
        return query_size(call, uop, args.count);
    case abi::GNTTABOP_set_version:
        return set_version(call, uop);
    case abi::GNTTABOP_get_version:
        return get_version(call, uop);
    case abi::GNTTABOP_get_status_frames:
        return get_status_frames(call, uop, args.count);
    // dump_table (which Xen no longer offers either), transfer (page flipping, superseded by
    // copy) and cache_flush (Arm's) are not provided.
    default:
        return failure(Errc::enosys);
    }
}

}  // namespace hv::gnttab
