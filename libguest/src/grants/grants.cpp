// Grant tables at run time (guest/grants.hpp): the domain's own table set up and mapped, foreign
// grants mapped at window pages, grant copies; the C API of pvkit/gnttab.h.
#include <guest/frames.hpp>
#include <guest/grants.hpp>
#include <guest/start.hpp>
#include <pvkit/guest.h>
#include <pvkit/hypercalls.hpp>

namespace pvkit::guest {

namespace {
// One frame: 512 v1 entries, 504 of them ours (the first 8 are reserved).
constexpr std::uint32_t table_frames = 1;
constexpr std::size_t entries_per_frame = 4096 / sizeof(abi::grant_entry_v1);
constexpr std::size_t table_entries = table_frames * entries_per_frame;
std::uint64_t handed_out[GrantTable::bitmap_words(table_entries)];
GrantTable table;
enum class TableState : std::uint8_t { not_tried, ready, failed } state = TableState::not_tried;

bool set_up_table() {
    PageAllocator* pages = page_allocator();
    if (pages == nullptr)
        return false;
    abi::xen_pfn_t frames[table_frames] = {};
    abi::gnttab_setup_table request{};
    request.dom = static_cast<abi::domid_t>(abi::DOMID_SELF);
    request.nr_frames = table_frames;
    request.frame_list = abi::guest_handle<abi::xen_pfn_t>::from(frames);
    if (hypercall::gnttabop_setup_table(&request, 1) != 0 || request.status != abi::GNTST_okay)
        return false;
    // A run of window pages, so that the entries are one array; their own frames stay unmapped.
    const PageRun run = pages->allocate(table_frames);
    if (!run)
        return false;
    auto* entries = static_cast<abi::grant_entry_v1*>(pfn_to_virt(run.first));
    for (std::uint32_t i = 0; i < table_frames; ++i) {
        if (map_frame(reinterpret_cast<unsigned char*>(entries) + i * 4096, frames[i], true) != 0)
            return false;
    }
    return table.init({entries, table_entries}, handed_out) == GrantError::none;
}
}  // namespace

GrantTable* grant_table() {
    if (state == TableState::not_tried)
        state = set_up_table() ? TableState::ready : TableState::failed;
    return state == TableState::ready ? &table : nullptr;
}

ForeignMapping map_foreign_grant(abi::domid_t domid, GrantRef ref, bool readonly) {
    const Page window = allocate_page();
    if (window.address == nullptr)
        return {nullptr, 0, abi::GNTST_no_space};
    abi::gnttab_map_grant_ref request{};
    request.host_addr = reinterpret_cast<std::uintptr_t>(window.address);
    request.flags = abi::GNTMAP_host_map | (readonly ? abi::GNTMAP_readonly : 0);
    request.ref = ref;
    request.dom = domid;
    const long result = hypercall::gnttabop_map_grant_ref(&request, 1);
    if (result != 0 || request.status != abi::GNTST_okay) {
        (void)free_page(window);  // a failed map changed nothing: the page still maps its frame
        return {nullptr, 0, static_cast<std::int16_t>(result != 0 ? abi::GNTST_general_error : request.status)};
    }
    return {window.address, request.handle, abi::GNTST_okay};
}

std::int16_t unmap_foreign_grant(const ForeignMapping& mapping) {
    abi::gnttab_unmap_grant_ref request{};
    request.host_addr = reinterpret_cast<std::uintptr_t>(mapping.address);
    request.handle = mapping.handle;
    const long result = hypercall::gnttabop_unmap_grant_ref(&request, 1);
    if (result != 0 || request.status != abi::GNTST_okay)
        return static_cast<std::int16_t>(result != 0 ? abi::GNTST_general_error : request.status);
    const Pfn pfn = virt_to_pfn(mapping.address);
    if (restore_page(mapping.address) != 0)
        return abi::GNTST_general_error;  // keep the page out of the allocator: its address is unmapped
    (void)free_page({mapping.address, pfn, pfn_to_mfn(pfn)});
    return abi::GNTST_okay;
}

namespace {
// A GNTTABOP_copy structure for one piece; false (bad_copy_arg) when a side would cross a page.
bool describe_copy(const GrantCopy& piece, abi::gnttab_copy& request) {
    const std::uintptr_t address = reinterpret_cast<std::uintptr_t>(piece.local);
    if (piece.length == 0 || (address % 4096) + piece.length > 4096 ||
        piece.offset + static_cast<std::uint32_t>(piece.length) > 4096)
        return false;
    abi::gnttab_copy_ptr granted{};
    granted.u.ref = piece.ref;
    granted.domid = piece.domid;
    granted.offset = piece.offset;
    abi::gnttab_copy_ptr own{};
    own.u.gmfn = virt_to_mfn(piece.local);  // a PV guest names its own frames by mfn
    own.domid = static_cast<abi::domid_t>(abi::DOMID_SELF);
    own.offset = static_cast<std::uint16_t>(address % 4096);
    request = {};
    request.source = piece.to_grant ? own : granted;
    request.dest = piece.to_grant ? granted : own;
    request.len = piece.length;
    request.flags = piece.to_grant ? abi::GNTCOPY_dest_gref : abi::GNTCOPY_source_gref;
    return true;
}
}  // namespace

std::int16_t copy_grants(std::span<const GrantCopy> copies) {
    std::int16_t first_failure = abi::GNTST_okay;
    const auto note = [&first_failure](std::int16_t status) {
        if (first_failure == abi::GNTST_okay)
            first_failure = status;
    };
    abi::gnttab_copy batch[grant_copy_batch];
    while (!copies.empty()) {
        // Pieces with bad arguments are left out of the hypercall and counted as failed.
        std::uint32_t count = 0, taken = 0;
        for (; taken < copies.size() && count < grant_copy_batch; ++taken) {
            if (describe_copy(copies[taken], batch[count]))
                ++count;
            else
                note(abi::GNTST_bad_copy_arg);
        }
        copies = copies.subspan(taken);
        if (count == 0)
            continue;
        if (hypercall::gnttabop_copy(batch, count) != 0) {
            note(abi::GNTST_general_error);
            continue;
        }
        for (std::uint32_t i = 0; i < count; ++i) {
            if (batch[i].status != abi::GNTST_okay)
                note(batch[i].status);
        }
    }
    return first_failure;
}

std::int16_t copy_to_grant(abi::domid_t domid, GrantRef ref, std::uint16_t offset, const void* source, std::uint16_t length) {
    const GrantCopy piece{domid, ref, offset, const_cast<void*>(source), length, true};
    return copy_grants({&piece, 1});
}

std::int16_t copy_from_grant(abi::domid_t domid, GrantRef ref, std::uint16_t offset, void* destination,
                             std::uint16_t length) {
    const GrantCopy piece{domid, ref, offset, destination, length, false};
    return copy_grants({&piece, 1});
}

}  // namespace pvkit::guest

using namespace pvkit::guest;

extern "C" {
long pvk_grant_access(uint16_t domid, uint64_t frame, int readonly) {
    GrantTable* grants = grant_table();
    if (grants == nullptr)
        return -1;
    const GrantResult result = grants->grant_access(domid, frame, readonly != 0);
    return result ? static_cast<long>(result.ref) : -static_cast<long>(result.error);
}
int pvk_end_access(uint32_t ref) {
    GrantTable* grants = grant_table();
    return grants == nullptr ? -1 : -static_cast<int>(grants->end_access(ref));
}
int pvk_grant_in_use(uint32_t ref) {
    GrantTable* grants = grant_table();
    return grants != nullptr && grants->in_use(ref);
}
int pvk_gnttab_map(uint16_t domid, uint32_t ref, int readonly, struct pvk_grant_mapping* mapping) {
    const ForeignMapping mapped = map_foreign_grant(domid, ref, readonly != 0);
    *mapping = {mapped.address, mapped.handle};
    return mapped.status;
}
int pvk_gnttab_unmap(const struct pvk_grant_mapping* mapping) {
    return unmap_foreign_grant({mapping->address, mapping->handle, 0});
}
int pvk_gnttab_copy_to(uint16_t domid, uint32_t ref, uint16_t offset, const void* source, uint16_t length) {
    return copy_to_grant(domid, ref, offset, source, length);
}
int pvk_gnttab_copy_from(uint16_t domid, uint32_t ref, uint16_t offset, void* destination, uint16_t length) {
    return copy_from_grant(domid, ref, offset, destination, length);
}
}
