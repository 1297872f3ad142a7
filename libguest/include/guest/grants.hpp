// Grant tables, version 1: giving other domains access to our pages, and mapping theirs.
//
// GrantTable is the granting side over the table's entries (grant_entry_v1: flags, domid, frame),
// with no hypercalls. Refs below GNTTAB_NR_RESERVED_ENTRIES (8) belong to the toolstack and are
// never handed out. The protocol, as grant_table.h describes it:
//   - grant: write domid and frame, then (release) flags = GTF_permit_access [| GTF_readonly], so
//     the hypervisor never sees a permitted entry with stale contents;
//   - end: the hypervisor sets GTF_reading/GTF_writing while the grantee maps or copies the page,
//     in a compare-exchange on the flags word. The guest compare-exchanges the flags it read
//     (without those bits) to 0: if the hypervisor set a bit in between, the exchange fails and the
//     guest looks again. While a bit is set, end_access is refused (in_use) and the grant stays:
//     the frame must not be reused while another domain can still write it.
// Which refs are handed out is kept in a bitmap the caller provides (bitmap_words(entries)).
//
// The runtime (images only) sets the table up with GNTTABOP_setup_table, maps its frames in the
// memory window (guest/frames.hpp) and keeps one GrantTable over them; it maps foreign grants at
// window pages of its own (GNTTABOP_map_grant_ref with host_addr) and copies with GNTTABOP_copy.
#pragma once

#include <pvkit/abi.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace pvkit::guest {

using GrantRef = abi::grant_ref_t;

enum class GrantError : std::uint8_t {
    none,
    no_free_entry,    // every ref is in use
    bad_ref,          // reserved, beyond the table, or not handed out by this table
    in_use,           // the grantee still maps (or copies from/to) the page: GTF_reading/GTF_writing
    bitmap_too_small,
};

struct GrantResult {
    GrantRef ref;
    GrantError error;
    explicit operator bool() const { return error == GrantError::none; }
};

class GrantTable {
public:
    static constexpr std::size_t bitmap_words(std::size_t entries) { return (entries + 63) / 64; }
    static constexpr GrantRef first_ref = abi::GNTTAB_NR_RESERVED_ENTRIES;

    [[nodiscard]] GrantError init(std::span<abi::grant_entry_v1> entries, std::span<std::uint64_t> bitmap);

    // Lets `domid` map or copy machine frame `frame` (read-only if asked).
    [[nodiscard]] GrantResult grant_access(abi::domid_t domid, std::uint64_t frame, bool readonly);
    // Withdraws the grant and frees the ref; refused (in_use) while the grantee still uses it.
    [[nodiscard]] GrantError end_access(GrantRef ref);
    // Whether the grantee maps or copies the page now (GTF_reading or GTF_writing).
    bool in_use(GrantRef ref) const;
    std::size_t free_entries() const { return free_; }
    std::size_t size() const { return entries_.size(); }

private:
    bool handed_out(GrantRef ref) const { return (bitmap_[ref / 64] >> (ref % 64)) & 1; }
    void set_handed_out(GrantRef ref, bool value);

    std::span<abi::grant_entry_v1> entries_;
    std::span<std::uint64_t> bitmap_;
    std::size_t free_ = 0;
    GrantRef next_ = first_ref;
};

// Runtime (images only): the domain's own table, set up on first use.
struct ForeignMapping {
    void* address;                 // where the granted page is mapped, null when mapping failed
    std::uint32_t handle;          // for unmap
    std::int16_t status;           // GNTST_*: 0 when mapped
};
// The runtime's table, after GNTTABOP_setup_table and mapping its frames; null when that failed.
GrantTable* grant_table();
ForeignMapping map_foreign_grant(abi::domid_t domid, GrantRef ref, bool readonly);
// Unmaps it and gives the window page its own frame back; the GNTST_* status.
std::int16_t unmap_foreign_grant(const ForeignMapping& mapping);
// One piece of a grant copy: `length` bytes between `local` (inside one page of ours) and the
// page `ref` that `domid` granted us, at `offset` in it.
struct GrantCopy {
    abi::domid_t domid;
    GrantRef ref;
    std::uint16_t offset;
    void* local;
    std::uint16_t length;
    bool to_grant;  // from ours to the granted page; else from the granted page to ours
};
// Pieces per GNTTABOP_copy: a longer span takes several hypercalls.
inline constexpr std::size_t grant_copy_batch = 32;
// Copies every piece, grant_copy_batch of them per hypercall. GNTST_okay when all succeeded, else
// the status of the first that failed (the others are done all the same, as Xen does them; a
// piece crossing a page is bad_copy_arg and left out).
std::int16_t copy_grants(std::span<const GrantCopy> copies);
// GNTTABOP_copy between `length` bytes of ours (inside one of our pages) and a page another
// domain granted us, at `offset`; the GNTST_* status.
std::int16_t copy_to_grant(abi::domid_t domid, GrantRef ref, std::uint16_t offset, const void* source, std::uint16_t length);
std::int16_t copy_from_grant(abi::domid_t domid, GrantRef ref, std::uint16_t offset, void* destination,
                             std::uint16_t length);

}  // namespace pvkit::guest
