// The start of day of a 64-bit PV domain.
//
// Pseudo-physical frame n is mapped at VIRT_BASE + n * 4 KiB. From the kernel's first page on,
// each part page-aligned and in this order (as Xen's builders lay it out):
//   kernel | ramdisk | p2m list | start_info | xenstore page | console page | page tables | stack
// (no xenstore and console page for the initial domain), then at least 512 KiB spare, the whole
// rounded up to 4 MiB; all of it is mapped by the initial page tables, which are counted so that
// they map themselves too. L1 entries are present, writable and accessed, except those mapping a
// page-table frame, which are read-only; upper entries are present, writable, accessed, dirty and
// user. The memory component then validates the hierarchy and pins its L4, which becomes vCPU 0's
// kernel base. Frames are taken from the heap one by one, so pseudo-physical order says nothing
// about machine order; the p2m list says which is which, and the M2P the reverse.
#include <hv/builder.hpp>

#include <algorithm>
#include <cstring>

namespace hv::builder {
namespace {

namespace pte = mm::pte;

constexpr std::uint64_t page_size = mm::page_size;
constexpr std::uint64_t spare_pages = (512 * 1024) / page_size;
constexpr std::uint64_t mapping_granule = (4 * 1024 * 1024) / page_size;
constexpr std::uint64_t p2m_entries_per_frame = page_size / sizeof(std::uint64_t);

constexpr std::uint64_t upper_flags = pte::present | pte::writable | pte::accessed | pte::dirty | pte::user;
constexpr std::uint64_t l1_flags = pte::present | pte::writable | pte::accessed;

constexpr std::uint32_t bit(unsigned number) { return 1u << number; }

constexpr std::uint64_t pages_for(std::uint64_t bytes) { return (bytes + page_size - 1) / page_size; }
constexpr std::uint64_t round_up(std::uint64_t value, std::uint64_t granule) {
    return (value + granule - 1) / granule * granule;
}

// The features a domain built here provides, of those a kernel may require.
constexpr std::uint32_t provided_features(bool privileged) {
    return bit(abi::XENFEAT_writable_page_tables) | bit(abi::XENFEAT_pae_pgdir_above_4gb) |
           (privileged ? bit(abi::XENFEAT_dom0) : 0);
}

// The page tables that map [first, first + pages * 4 KiB): per level, the first region one table
// covers and how many tables there are.
struct TableCounts {
    std::uint64_t l3, l2, l1;
    std::uint64_t total() const { return 1 + l3 + l2 + l1; }
};
constexpr std::uint64_t tables_spanning(std::uint64_t first, std::uint64_t last, unsigned shift) {
    return (last >> shift) - (first >> shift) + 1;
}
TableCounts tables_for(std::uint64_t first, std::uint64_t pages) {
    const std::uint64_t last = first + pages * page_size - 1;
    return {tables_spanning(first, last, 39), tables_spanning(first, last, 30), tables_spanning(first, last, 21)};
}

// One 32-byte stub per hypercall: `push %rcx; push %r11; mov $nr, %eax; syscall; pop %r11;
// pop %rcx; ret`, and for iret `push %rcx; push %r11; push %rax; mov $23, %eax; syscall`, which
// does not return. The rest of each stub is int3.
constexpr std::size_t stub_size = 32;
void write_hypercall_page(std::byte* page) {
    std::memset(page, 0xCC, page_size);
    for (std::uint32_t number = 0; number < page_size / stub_size; ++number) {
        std::byte* stub = page + number * stub_size;
        std::size_t at = 0;
        const auto emit = [&](std::initializer_list<std::uint8_t> bytes) {
            for (std::uint8_t value : bytes)
                stub[at++] = std::byte{value};
        };
        emit({0x51, 0x41, 0x53});  // push %rcx; push %r11
        if (number == abi::HYPERVISOR_iret)
            emit({0x50});  // push %rax
        emit({0xB8, static_cast<std::uint8_t>(number), 0, 0, 0});  // mov $number, %eax
        emit({0x0F, 0x05});                                        // syscall
        if (number != abi::HYPERVISOR_iret)
            emit({0x41, 0x5B, 0x59, 0xC3});  // pop %r11; pop %rcx; ret
    }
}

}  // namespace

std::string_view describe(BuildError error) {
    switch (error) {
    case BuildError::none:
        return "no error";
    case BuildError::missing_feature:
        return "the kernel requires a Xen feature this domain does not provide";
    case BuildError::command_line_too_long:
        return "the command line is longer than 1023 bytes";
    case BuildError::too_small:
        return "the memory is too small for the kernel, its ramdisk and its start-of-day pages";
    case BuildError::too_large:
        return "the memory is larger than the builder lays out (2 GiB)";
    case BuildError::over_budget:
        return "the memory is larger than the domain may have";
    case BuildError::out_of_memory:
        return "the hypervisor ran out of free memory";
    case BuildError::overlaps_hypervisor:
        return "the kernel's mapping would reach the hypervisor's address range";
    case BuildError::page_tables_refused:
        return "the initial page tables were refused";
    case BuildError::console_refused:
        return "the console ring could not be set up";
    case BuildError::store_refused:
        return "the xenstore ring could not be set up";
    }
    return "unknown error";
}

BuildError plan(const ElfImage& kernel, const BuildOptions& options, bool privileged, StartOfDay& layout) {
    if ((kernel.notes.required_features & ~provided_features(privileged)) != 0)
        return BuildError::missing_feature;
    if (options.command_line.size() >= abi::MAX_GUEST_CMDLINE)
        return BuildError::command_line_too_long;
    if (options.memory_pages > max_memory_pages)
        return BuildError::too_large;
    StartOfDay planned{};
    planned.virt_base = kernel.virt_base;
    planned.nr_pages = options.memory_pages;
    // parse_image guarantees virt_base <= virtual_start < virtual_end, page-aligned start.
    const std::uint64_t kernel_end = pages_for(kernel.virtual_end - kernel.virt_base);
    if (kernel_end > max_memory_pages || options.ramdisk.size() > max_memory_pages * page_size)
        return BuildError::too_small;
    planned.kernel_pfn = (kernel.virtual_start - kernel.virt_base) / page_size;
    planned.kernel_pages = kernel_end - planned.kernel_pfn;
    std::uint64_t pfn = kernel_end;
    planned.ramdisk_pfn = pfn;
    planned.ramdisk_pages = pages_for(options.ramdisk.size());
    pfn += planned.ramdisk_pages;
    planned.p2m_pfn = pfn;
    planned.p2m_pages = pages_for(options.memory_pages * sizeof(std::uint64_t));
    pfn += planned.p2m_pages;
    planned.start_info_pfn = pfn++;
    if (!options.initial_domain) {
        planned.store_pfn = pfn++;
        planned.console_pfn = pfn++;
    }
    planned.page_table_pfn = pfn;
    // The tables map everything up to the spare, themselves included: count until they do.
    std::uint64_t tables = 0;
    for (;;) {
        planned.mapped_pages = round_up(pfn + tables + 1 + spare_pages, mapping_granule);
        const std::uint64_t needed = tables_for(planned.virt_base, planned.mapped_pages).total();
        if (needed <= tables)
            break;
        tables = needed;
    }
    planned.page_table_pages = tables;
    planned.stack_pfn = pfn + tables;
    if (!is_guest_range(Vaddr{planned.virt_base}, planned.mapped_pages * page_size))
        return BuildError::overlaps_hypervisor;
    if (planned.mapped_pages > options.memory_pages)
        return BuildError::too_small;
    layout = planned;
    return BuildError::none;
}

std::uint64_t& DomainBuilder::p2m_entry(std::uint64_t pfn) {
    auto* p2m = reinterpret_cast<std::uint64_t*>(
        domains_.frames().platform().map(Mfn{p2m_frames_[pfn / p2m_entries_per_frame]}));
    return p2m[pfn % p2m_entries_per_frame];
}

Mfn DomainBuilder::frame_of(std::uint64_t pfn) { return Mfn{p2m_entry(pfn)}; }

std::byte* DomainBuilder::map_pfn(std::uint64_t pfn) { return domains_.frames().platform().map(frame_of(pfn)); }

BuildError DomainBuilder::allocate_memory(domain::Domain& domain, const StartOfDay& layout) {
    mm::FrameTable& frames = domains_.frames();
    if (domain.memory.tot_pages + layout.nr_pages > domain.memory.max_pages)
        return BuildError::over_budget;
    if (frames.free_frames() < layout.nr_pages)
        return BuildError::out_of_memory;
    // The p2m list's own frames first: every other frame is recorded in them as it is taken.
    for (std::uint64_t index = 0; index < layout.p2m_pages; ++index)
        p2m_frames_[index] = frames.allocate(domain.memory)->value;
    for (std::uint64_t pfn = 0; pfn < layout.nr_pages; ++pfn) {
        const bool in_p2m = pfn >= layout.p2m_pfn && pfn < layout.p2m_pfn + layout.p2m_pages;
        const Mfn frame = in_p2m ? Mfn{p2m_frames_[pfn - layout.p2m_pfn]} : *frames.allocate(domain.memory);
        p2m_entry(pfn) = frame.value;
        frames.set_machine_to_phys(frame, pfn);
    }
    return BuildError::none;
}

void DomainBuilder::load(const ElfImage& kernel, const BuildOptions& options, const StartOfDay& layout) {
    // Bytes at pseudo-physical offset `offset`, page by page; the frames start zeroed.
    const auto copy_in = [&](std::uint64_t offset, std::span<const std::byte> bytes) {
        for (std::uint64_t done = 0; done < bytes.size();) {
            const std::uint64_t in_page = (offset + done) % page_size;
            const std::uint64_t length = std::min<std::uint64_t>(bytes.size() - done, page_size - in_page);
            std::memcpy(map_pfn((offset + done) / page_size) + in_page, bytes.data() + done, length);
            done += length;
        }
    };
    for (const Segment& segment : kernel.loadable())
        copy_in(kernel.load_address(segment) - kernel.virt_base,
                kernel.bytes.subspan(segment.file_offset, segment.file_size));
    copy_in(layout.ramdisk_pfn * page_size, options.ramdisk);
    if (kernel.notes.hypercall_page)
        write_hypercall_page(map_pfn((*kernel.notes.hypercall_page - kernel.virt_base) / page_size));
}

void DomainBuilder::fill_start_info(domain::Domain& domain, const BuildOptions& options, const StartOfDay& layout,
                                    const ElfImage& kernel, Port console_port, Port store_port) {
    auto& info = *reinterpret_cast<abi::start_info*>(map_pfn(layout.start_info_pfn));
    constexpr std::string_view magic = "xen-3.0-x86_64";
    std::copy(magic.begin(), magic.end(), info.magic);
    info.nr_pages = layout.nr_pages;
    info.shared_info = domain.shared_info.value * page_size;
    const bool module_as_pfn = kernel.notes.mod_start_pfn && !options.ramdisk.empty();
    info.flags = (domain.memory.privileged ? abi::SIF_PRIVILEGED : 0) |
                 (options.initial_domain ? abi::SIF_INITDOMAIN : 0) | (module_as_pfn ? abi::SIF_MOD_START_PFN : 0);
    if (!options.initial_domain) {
        info.store_mfn = frame_of(layout.store_pfn).value;
        info.store_evtchn = store_port.value;
        info.console.domU.mfn = frame_of(layout.console_pfn).value;
        info.console.domU.evtchn = console_port.value;
    }
    info.pt_base = layout.address(layout.page_table_pfn);
    info.nr_pt_frames = layout.page_table_pages;
    info.mfn_list = layout.address(layout.p2m_pfn);
    if (!options.ramdisk.empty()) {
        info.mod_start = module_as_pfn ? layout.ramdisk_pfn : layout.address(layout.ramdisk_pfn);
        info.mod_len = options.ramdisk.size();
    }
    std::copy(options.command_line.begin(), options.command_line.end(), info.cmd_line);
}

Mfn DomainBuilder::build_page_tables(const StartOfDay& layout) {
    const std::uint64_t first = layout.virt_base;
    const TableCounts counts = tables_for(first, layout.mapped_pages);
    const std::uint64_t l4 = layout.page_table_pfn;
    const std::uint64_t l3 = l4 + 1, l2 = l3 + counts.l3, l1 = l2 + counts.l2;
    const auto table = [&](std::uint64_t pfn) { return reinterpret_cast<std::uint64_t*>(map_pfn(pfn)); };
    const auto link = [&](std::uint64_t table_pfn) { return (frame_of(table_pfn).value << 12) | upper_flags; };
    const auto index = [](std::uint64_t address, unsigned shift) { return (address >> shift) % 512; };
    for (std::uint64_t pfn = 0; pfn < layout.mapped_pages; ++pfn) {
        const std::uint64_t address = layout.address(pfn);
        const std::uint64_t l3_table = l3 + (address >> 39) - (first >> 39);
        const std::uint64_t l2_table = l2 + (address >> 30) - (first >> 30);
        const std::uint64_t l1_table = l1 + (address >> 21) - (first >> 21);
        table(l4)[index(address, 39)] = link(l3_table);
        table(l3_table)[index(address, 30)] = link(l2_table);
        table(l2_table)[index(address, 21)] = link(l1_table);
        const bool page_table = pfn >= layout.page_table_pfn && pfn < layout.page_table_pfn + layout.page_table_pages;
        table(l1_table)[index(address, 12)] = (frame_of(pfn).value << 12) | (page_table ? l1_flags & ~pte::writable : l1_flags);
    }
    return frame_of(l4);
}

void DomainBuilder::set_time(domain::Domain& domain, const StartTime& time) {
    auto& shared = *reinterpret_cast<abi::shared_info*>(domains_.frames().platform().map(domain.shared_info));
    for (std::uint32_t vcpu = 0; vcpu < std::min<std::uint32_t>(domain.vcpu_count(), abi::XEN_LEGACY_MAX_VCPUS); ++vcpu) {
        abi::vcpu_time_info& info = shared.vcpu_info[vcpu].time;
        info.version = 2;  // even: not being updated
        info.tsc_timestamp = time.tsc_timestamp;
        info.system_time = time.system_time_ns;
        info.tsc_to_system_mul = time.tsc_to_system_mul;
        info.tsc_shift = time.tsc_shift;
    }
    shared.wc_version = 2;
    shared.wc_sec = static_cast<std::uint32_t>(time.wallclock_sec);
    shared.wc_sec_hi = static_cast<std::uint32_t>(time.wallclock_sec >> 32);
    shared.wc_nsec = time.wallclock_nsec;
}

BuildError DomainBuilder::build(domain::Domain& domain, const ElfImage& kernel, const BuildOptions& options,
                                Built& built) {
    StartOfDay layout;
    if (const BuildError planned = plan(kernel, options, domain.memory.privileged, layout); planned != BuildError::none)
        return planned;
    if (const BuildError allocated = allocate_memory(domain, layout); allocated != BuildError::none)
        return allocated;
    load(kernel, options, layout);
    const Mfn l4 = build_page_tables(layout);
    mm::PageTables& tables = domains_.page_tables();
    if (!tables.pin(domain.memory, l4, 4))
        return BuildError::page_tables_refused;
    if (!tables.set_kernel_base(domain.memory, domain.storage.vcpu_memory[0], l4))
        return BuildError::page_tables_refused;
    Port console_port{0}, store_port{0};
    if (!options.initial_domain) {
        const auto attached = domains_.attach_console_ring(domain, frame_of(layout.console_pfn));
        if (!attached)
            return BuildError::console_refused;
        console_port = *attached;
        if (domains_.has_store()) {
            const auto store = domains_.attach_store_ring(domain, frame_of(layout.store_pfn));
            if (!store)
                return BuildError::store_refused;
            store_port = *store;
        }
    }
    fill_start_info(domain, options, layout, kernel, console_port, store_port);
    set_time(domain, options.time);
    // A kernel that requires writable page tables gets the assist without asking for it.
    if (kernel.notes.required_features & bit(abi::XENFEAT_writable_page_tables)) {
        domain.vm_assist |= std::uint64_t{1} << abi::VMASST_TYPE_writable_pagetables;
        domain.memory.writable_pagetables = true;
    }
    built = {layout,
             {.rip = kernel.entry, .rsp = layout.address(layout.stack_pfn + 1), .rsi = layout.address(layout.start_info_pfn)},
             console_port, store_port};
    return BuildError::none;
}

}  // namespace hv::builder
