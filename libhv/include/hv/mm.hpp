// The frame table: who owns each machine frame, how many references it has, what type it has.
//
// The invariants it keeps are written at the top of libhv/src/mm/frame_table.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include <boost/intrusive/list.hpp>
#include <boost/intrusive/set.hpp>

#include <hv/core.hpp>

namespace hv::mm {

inline constexpr std::uint64_t page_size = 4096;
inline constexpr unsigned entries_per_table = 512;

// What a frame is used as. A frame has one type at a time; only a frame whose type count is zero
// can change type.
enum class PageType : std::uint8_t {
    none,      // ordinary memory, mapped read-only or not at all
    l1,        // page tables, by level
    l2,
    l3,
    l4,
    seg_desc,  // a GDT or LDT page
    writable,  // mapped writable somewhere
};

constexpr PageType table_type(unsigned level) { return static_cast<PageType>(level); }
constexpr bool is_page_table(PageType type) { return type >= PageType::l1 && type <= PageType::l4; }
constexpr unsigned table_level(PageType type) { return static_cast<unsigned>(type); }

using FrameLink = boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>>;

// One machine frame's bookkeeping: 32 bytes, as Xen's page_info.
struct PageInfo {
    FrameLink link;                  // in the owner's frame list, or in the heap's free list
    std::uint32_t ref_count = 0;     // general references: allocation, mappings, table entries, pins, bases
    std::uint32_t type_count = 0;    // references that need the frame to keep `type`
    DomId owner{pvkit::abi::DOMID_INVALID};
    PageType type = PageType::none;
    std::uint8_t flags = 0;
    std::int16_t linear_count = 0;   // >0: holds that many linear entries; <0: the target of that many
    std::uint16_t validated_entries = 0;  // a partially validated table: entries [0, this) hold references

    static constexpr std::uint8_t allocated = 1 << 0;  // owns the owner's allocation reference
    static constexpr std::uint8_t pinned = 1 << 1;     // a pin holds one type and one general reference
    static constexpr std::uint8_t shared = 1 << 2;     // hypervisor memory shared with the owner (shared_info...)
    static constexpr std::uint8_t devalidating = 1 << 3;  // a table whose last type reference went, queued
    static constexpr std::uint8_t was_table = 1 << 4;     // a table or descriptor page since the last flush
    static constexpr std::uint8_t partial = 1 << 5;       // a table being validated, in bounded steps

    bool has(std::uint8_t flag) const { return (flags & flag) != 0; }
};
static_assert(sizeof(PageInfo) <= 32, "Xen's page_info is 32 bytes; ours must not be larger");

using FrameList = boost::intrusive::list<PageInfo, boost::intrusive::member_hook<PageInfo, FrameLink, &PageInfo::link>,
                                         boost::intrusive::constant_time_size<false>>;

// A domain as the memory component sees it. It takes part in a FrameTable between
// FrameTable::add_domain and FrameTable::remove_domain.
struct DomainMemory {
    explicit DomainMemory(DomId domain_id, std::uint64_t page_limit, bool is_privileged = false)
        : id{domain_id}, max_pages{page_limit}, privileged{is_privileged} {}
    DomainMemory(const DomainMemory&) = delete;
    DomainMemory& operator=(const DomainMemory&) = delete;

    boost::intrusive::set_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>> registry_link;
    DomId id;
    std::uint64_t max_pages;
    bool privileged;
    bool writable_pagetables = false;  // VMASST_TYPE_writable_pagetables
    bool flush_owed = false;           // a translation was removed that its TLBs may still hold
    std::uint64_t tot_pages = 0;       // frames the domain owns, in either list
    FrameList frames;                  // every frame the domain owns, shared frames included...
    FrameList relinquished;            // ...but those whose references teardown has already dropped
    FrameList devalidating;            // ...and tables waiting to drop their entries' references
};

struct DomainIdOf {
    using type = DomId;
    const DomId& operator()(const DomainMemory& domain) const { return domain.id; }
};
using DomainRegistry = boost::intrusive::set<
    DomainMemory,
    boost::intrusive::member_hook<DomainMemory, decltype(DomainMemory::registry_link), &DomainMemory::registry_link>,
    boost::intrusive::key_of_value<DomainIdOf>>;

struct VcpuMmu;

// What the memory component needs from the machine.
class MemoryPlatform {
public:
    // The frame's contents, writable by the hypervisor (a direct map, an array, mmap'ed RAM...).
    virtual std::byte* map(Mfn frame) = 0;
    // Entries the hypervisor keeps in L4 slots 256-271 of every guest L4 of `domain`.
    virtual std::uint64_t hypervisor_l4_entry(const DomainMemory& domain, unsigned slot) = 0;
    // The domain's TLBs may hold stale translations: flush them (every vCPU of the domain).
    virtual void flush_tlb(const DomainMemory& domain) = 0;
    // Write back and invalidate the CPU caches (MMUEXT_FLUSH_CACHE, privileged domains only).
    virtual void flush_caches() = 0;

    // The descriptors a vCPU's GDT puts in the CPU changed. A platform that maps the guest's
    // descriptor frames into its own GDT (as Xen does) sees every change through the mapping and
    // needs neither hook; one that copies the validated descriptors into its GDT follows them here.
    // `vcpu` has a new GDT (set_gdt, or none when its domain is torn down): its gdt_frames and
    // gdt_entries say which. Called once the frames are descriptor pages, their descriptors final.
    virtual void gdt_changed(const DomainMemory& /*domain*/, const VcpuMmu& /*vcpu*/) {}
    // Descriptor `index` of `frame`, a descriptor page (in a GDT), is now `descriptor`
    // (update_descriptor); the platform updates every copy of the frame it keeps.
    virtual void descriptor_changed(const DomainMemory& /*domain*/, Mfn /*frame*/, unsigned /*index*/,
                                    std::uint64_t /*descriptor*/) {}

protected:
    ~MemoryPlatform() = default;
};

// The frame table and the heap of free frames, over storage the embedder provides.
class FrameTable {
public:
    // `frames` has one PageInfo per machine frame; `machine_to_phys` one entry per machine frame.
    FrameTable(MemoryPlatform& platform, std::span<PageInfo> frames, std::span<std::uint64_t> machine_to_phys);
    FrameTable(const FrameTable&) = delete;
    FrameTable& operator=(const FrameTable&) = delete;

    MemoryPlatform& platform() { return platform_; }
    std::uint64_t frame_count() const { return frames_.size(); }
    bool is_valid(Mfn frame) const { return frame.value < frames_.size(); }
    PageInfo& info(Mfn frame) { return frames_[frame.value]; }
    const PageInfo& info(Mfn frame) const { return frames_[frame.value]; }
    Mfn mfn_of(const PageInfo& page) const { return Mfn{static_cast<std::uint64_t>(&page - frames_.data())}; }
    std::uint64_t free_frames() const { return free_count_; }

    // Domains whose frames this table tracks. add_domain fails with eexist for a taken id;
    // remove_domain with ebusy while the domain still owns frames.
    Result<void> add_domain(DomainMemory& domain);
    Result<void> remove_domain(DomainMemory& domain);
    DomainMemory* domain(DomId id);
    const DomainRegistry& domains() const { return domains_; }
    DomainRegistry& domains() { return domains_; }

    // Hands frames [first, first + count) to the heap. They must be unowned.
    void add_to_heap(Mfn first, std::uint64_t count);
    // A zeroed frame for `domain`, holding its allocation reference; enomem past max_pages or when
    // the heap is empty.
    Result<Mfn> allocate(DomainMemory& domain);
    // A zeroed frame out of the heap for the hypervisor's own use (shared_info, grant-table frames),
    // owned by no domain; enomem when the heap is empty.
    Result<Mfn> take_from_heap();
    // Gives a hypervisor frame (from take_from_heap) to `domain` to map, writable. The domain
    // cannot give it back; it returns to the heap when the domain is torn down.
    void share_with(DomainMemory& domain, Mfn frame);
    // Drops the allocation reference: the frame leaves `domain` and is freed on its last put.
    Result<void> release(DomainMemory& domain, Mfn frame);

    // A general reference on a frame owned by `owner` (false: not owned by it, or the count would
    // overflow). Every successful get is matched by one put_page. Inline: they are the hot path.
    [[nodiscard]] bool get_page(Mfn frame, const DomainMemory& owner) {
        if (!is_valid(frame))
            return false;
        PageInfo& page = info(frame);
        // A frame with no references is in the heap (or on its way there) and belongs to no one.
        // The margin leaves room for the references the hypervisor itself takes on a frame.
        if (page.owner != owner.id || page.ref_count == 0 || page.ref_count >= UINT32_MAX - 8)
            return false;
        ++page.ref_count;
        return true;
    }
    void put_page(Mfn frame) {
        PageInfo& page = info(frame);
        if (--page.ref_count == 0)
            free(page);
    }

    // TLB flushes are deferred: removing a mapping only records that the domain owes one, and every
    // owed flush is paid before a frame returns to the heap, becomes a page table or descriptor
    // page, or stops being one: the moments when a stale translation, or a stale cached walk through
    // an old table, would become a way out (as Xen's TLB-flush clock does). Guests that want their
    // own TLBs flushed ask for it (mmuext_op, UVMF_*).
    void defer_flush(DomainMemory& domain);
    void flush_owed();

    // The machine-to-phys table: the guest frame number each machine frame holds.
    std::uint64_t machine_to_phys(Mfn frame) const { return m2p_[frame.value]; }
    void set_machine_to_phys(Mfn frame, std::uint64_t gfn) { m2p_[frame.value] = gfn; }

private:
    void free(PageInfo& page);

    MemoryPlatform& platform_;
    std::span<PageInfo> frames_;
    std::span<std::uint64_t> m2p_;
    DomainRegistry domains_;
    FrameList free_list_;
    std::uint64_t free_count_ = 0;
    unsigned owed_flushes_ = 0;
};

}  // namespace hv::mm
