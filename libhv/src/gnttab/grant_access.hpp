// What the grant-table sub-ops share: access to shared entries, pins, handles, host mappings.
// Internal to libhv/src/gnttab.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include <hv/gnttab.hpp>

namespace hv::gnttab::detail {

constexpr std::int16_t status_code(GrantStatus status) { return static_cast<std::int16_t>(status); }

// A v1 entry as two 32-bit words, so that the hypervisor reads and updates flags and domid together
// (as Xen's grant_combo): word 0 holds flags in bits 0-15 and domid in bits 16-31, word 1 the frame.
static_assert(offsetof(abi::grant_entry_v1, flags) == 0 && offsetof(abi::grant_entry_v1, domid) == 2 &&
              offsetof(abi::grant_entry_v1, frame) == 4 && sizeof(abi::grant_entry_v1) == 8);
constexpr std::uint16_t entry_flags(std::uint32_t header) { return static_cast<std::uint16_t>(header); }
constexpr std::uint16_t entry_domid(std::uint32_t header) { return static_cast<std::uint16_t>(header >> 16); }

// The two words of `granter`'s entry `ref` (below nr_entries), or nullptr once the table no longer
// owns its frames (dying, or its frames already relinquished): then nothing reads or writes them.
std::uint32_t* shared_entry(FrameTable& frames, const GrantTable& granter, std::uint32_t ref);

// Pins. A pin for mapping refuses sub-page grants; a pin for copying does not (v1 has no sub-page
// grants, so the bit means nothing to a copy, as in Xen).
enum class Purpose { mapping, copy };

// The checks of pin_grant that change nothing: the ref exists and `user` may add a pin of this
// kind (bad_gntref, or general_error when another domain holds the pins or a count would overflow).
GrantStatus check_pinnable(const GrantTable& granter, std::uint32_t ref, DomId user, bool readonly);
// Pins entry `ref` for `user`: on the first pin (or the first writable one) the entry must grant
// access to `user` (GTF_permit_access, its domid, not GTF_readonly for a writable pin), and then
// gets GTF_reading (and GTF_writing) by compare-exchange, since the granter may change the entry
// at the same moment; a first pin also needs the granted frame to be the granter's (bad_page).
// On success `frame` is the pinned frame. On failure nothing changed.
GrantStatus pin_grant(FrameTable& frames, GrantTable& granter, std::uint32_t ref, DomId user, bool readonly,
                      Purpose purpose, Mfn& frame);
// Drops one pin; the last writable pin clears GTF_writing, the last pin GTF_reading.
void unpin_grant(FrameTable& frames, GrantTable& granter, std::uint32_t ref, bool readonly);

// Maptrack handles: oldest free first, then never-used ones.
bool has_free_handle(const GrantTable& table);
GrantHandle take_handle(GrantTable& table);
void put_handle(GrantTable& table, GrantHandle handle);

// Host mappings. A grant mapping is an L1 entry of the mapper's, written through
// PageTables::update_entry so that the entry holds the general (and writable) reference itself.
struct PteLocation {
    Mfn table;
    unsigned index;

    std::uint64_t address() const { return (table.value << 12) | (std::uint64_t{index} * 8); }
    bool operator==(const PteLocation&) const = default;
};
// The L1 entry a map or unmap names: with GNTMAP_contains_pte, `host_addr` is its machine address
// (8-byte aligned, in a validated L1 of the caller); otherwise a virtual address that the caller's
// current page tables map through an L1. einval otherwise.
Result<PteLocation> locate_host_entry(PageTables& tables, mm::MmuCaller& caller, std::uint64_t host_addr,
                                      bool contains_pte);
// True when `table` is an L1 table (validated, in use) of `owner`.
bool is_l1_of(const FrameTable& frames, Mfn table, DomId owner);
// The entry a grant mapping installs (Xen's PV grant PTE): present, accessed, dirty, not
// executable; writable unless GNTMAP_readonly; reachable from guest user mode with
// GNTMAP_application_map (else a guest-kernel mapping); flags bits 16-18 (the low three of
// GNTMAP_guest_avail_mask) in the available bits 9-11, whether `host_addr` named the entry by
// virtual address or with GNTMAP_contains_pte. No other flag reaches the entry.
std::uint64_t grant_pte(Mfn frame, std::uint32_t map_flags);
// True when `pte` is a present mapping of `frame` with the access `readonly` says.
bool pte_maps(std::uint64_t pte, Mfn frame, bool readonly);

// Flags of a mapping kept in its maptrack entry.
inline constexpr std::uint32_t kept_map_flags = abi::GNTMAP_host_map | abi::GNTMAP_readonly |
                                                abi::GNTMAP_application_map | abi::GNTMAP_contains_pte;

// The sub-ops. Each works on one structure the guest passed, already copied in, and fills in
// its status and outputs; grant_table_op.cpp copies them in and out.
struct Call {
    GrantTables& tables;
    GrantTable& own;  // the calling domain's table
    mm::MmuCaller& caller;
};

void map_grant_ref(Call& call, abi::gnttab_map_grant_ref& op);
// Unmapping happens in two steps. The first checks a handle and clears its mapping (or, with
// `new_addr`, moves the entry at that address over it: unmap_and_replace), and makes the handle
// unusable; `done` then says what complete_unmap must finish once the mapper's TLB is flushed:
// drop the pin and free the handle.
struct UnmapDone {
    GrantTable* granter;
    std::uint32_t ref;
    bool readonly;
    GrantHandle handle;
};
GrantStatus unmap_host_mapping(Call& call, GrantHandle handle, std::uint64_t host_addr, std::uint64_t dev_bus_addr,
                               std::uint64_t new_addr, std::optional<UnmapDone>& done);
void complete_unmap(Call& call, const UnmapDone& done);

// GNTTABOP_copy, one structure at a time. What a copy claims for a side (a pin on its grant, a
// reference on its frame, for the destination the writable type) is kept for the next structure
// of the batch if that names the same side again, as Xen does, and released when it does not,
// after a failure, and by release(): the batch calls it before it stops or returns.
struct CopySide {
    bool claimed = false;
    bool by_gref = false;
    abi::domid_t domid = 0;  // as the guest named it
    std::uint64_t name = 0;  // the grant ref or the frame number the guest gave
    GrantTable* domain = nullptr;
    Mfn frame{0};
    bool readonly = true;
    bool pinned = false;
    bool referenced = false;
    bool typed = false;
};
class CopyBatch {
public:
    explicit CopyBatch(Call& call) : call_{call} {}
    CopyBatch(const CopyBatch&) = delete;
    CopyBatch& operator=(const CopyBatch&) = delete;
    ~CopyBatch() { release(); }

    void copy(abi::gnttab_copy& op);
    void release();

private:
    GrantStatus copy_one(const abi::gnttab_copy& op);

    Call& call_;
    CopySide source_, dest_;
};
void swap_grant_ref(Call& call, abi::gnttab_swap_grant_ref& op);

// Sub-ops on one structure, which copy it in and out themselves: they return the hypercall's result.
long setup_table(Call& call, GuestHandle<void> uop, std::uint32_t count);
long query_size(Call& call, GuestHandle<void> uop, std::uint32_t count);
long set_version(Call& call, GuestHandle<void> uop);
long get_version(Call& call, GuestHandle<void> uop);
long get_status_frames(Call& call, GuestHandle<void> uop, std::uint32_t count);

// Writes the field at `field_offset` (offsetof) of element `index` of a guest array: the status
// a sub-op reports, where Xen writes back only that.
template <class T, class Field>
Result<void> copy_field_to_guest(GuestMemory& memory, GuestHandle<T> array, std::uint64_t index,
                                 std::size_t field_offset, const Field& value) {
    if (index > (UINT64_MAX - array.address) / sizeof(T))
        return Errc::efault;
    return copy_to_guest(memory, GuestHandle<Field>{array.address + index * sizeof(T) + field_offset}, value);
}

}  // namespace hv::gnttab::detail
