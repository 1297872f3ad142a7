// The domain builder: a PV kernel image turned into a domain ready to run its first instruction.
//
// It does what Xen's domain builders (libxenguest's xc_dom_*, the dom0 builder) do for a 64-bit PV
// kernel: give the domain its memory, load the kernel and its ramdisk, lay out the start-of-day
// pages after them, build the initial page tables and have the memory component validate and pin
// them, fill the hypercall page, start_info and the time in shared_info, and say which registers
// the first vCPU starts with. The layout is written at the top of libhv/src/builder/builder.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include <hv/domain.hpp>
#include <hv/elf_image.hpp>

namespace hv::builder {

namespace abi = pvkit::abi;

enum class BuildError : std::uint8_t {
    none,
    missing_feature,    // the kernel requires (FEATURES '!') a feature this domain does not get
    command_line_too_long,  // more than MAX_GUEST_CMDLINE - 1 bytes
    too_small,          // the memory cannot hold the kernel, ramdisk, start-of-day pages and the spare
    too_large,          // more memory than the builder lays out (max_memory_pages)
    over_budget,        // more memory than the domain's max_pages allows
    out_of_memory,      // the heap ran out of frames
    overlaps_hypervisor,  // the kernel's mapping would reach the hypervisor's range
    page_tables_refused,  // the memory component refused the initial page tables
    console_refused,    // the console ring could not be attached
    store_refused,      // the xenstore ring could not be attached
};
std::string_view describe(BuildError error);

// The largest domain the builder lays out: its p2m frames are remembered while it works.
inline constexpr std::size_t max_p2m_frames = 1024;
inline constexpr std::uint64_t max_memory_pages = max_p2m_frames * 512;  // 2 GiB

// The time a guest finds in shared_info before its first instruction. The platform keeps it
// current afterwards.
struct StartTime {
    std::uint64_t system_time_ns = 0;  // nanoseconds since the hypervisor's boot
    std::uint64_t tsc_timestamp = 0;   // the TSC when system_time_ns was taken
    std::uint32_t tsc_to_system_mul = 0;  // ns = ((tsc_delta << shift, or >> -shift) * mul) >> 32
    std::int8_t tsc_shift = 0;
    std::uint64_t wallclock_sec = 0;   // the wall time at system time 0
    std::uint32_t wallclock_nsec = 0;
};

struct BuildOptions {
    std::uint64_t memory_pages = 0;           // the domain's RAM, in 4 KiB pages
    std::span<const std::byte> ramdisk = {};  // the module (initrd), if any
    std::string_view command_line = {};
    bool initial_domain = false;  // SIF_INITDOMAIN: the dom0 console, no store or console page
    StartTime time = {};
};

// Where the start-of-day pages are, as pseudo-physical frame numbers (pfn 0 is VIRT_BASE).
struct StartOfDay {
    std::uint64_t virt_base = 0;
    std::uint64_t nr_pages = 0;
    std::uint64_t kernel_pfn = 0, kernel_pages = 0;
    std::uint64_t ramdisk_pfn = 0, ramdisk_pages = 0;
    std::uint64_t p2m_pfn = 0, p2m_pages = 0;
    std::uint64_t start_info_pfn = 0;
    std::uint64_t store_pfn = 0;    // no store and console page for the initial domain
    std::uint64_t console_pfn = 0;
    std::uint64_t page_table_pfn = 0, page_table_pages = 0;
    std::uint64_t stack_pfn = 0;
    std::uint64_t mapped_pages = 0;  // pfns [0, mapped_pages) are mapped at VIRT_BASE

    std::uint64_t address(std::uint64_t pfn) const { return virt_base + (pfn << 12); }
};

// Lays the domain out, or says why it cannot be (missing_feature, command_line_too_long,
// too_small, too_large, overlaps_hypervisor). No state is touched: `./pvkit run` checks images
// with it before boot.
BuildError plan(const ElfImage& kernel, const BuildOptions& options, bool privileged, StartOfDay& layout);

// The first vCPU's registers (the platform adds what is architecture-wide).
struct InitialRegisters {
    std::uint64_t rip = 0;     // the kernel's entry
    std::uint64_t rsp = 0;     // the top of the boot stack
    std::uint64_t rsi = 0;     // start_info's virtual address
    std::uint16_t cs = abi::FLAT_KERNEL_CS64;
    std::uint16_t ss = abi::FLAT_KERNEL_SS;
    std::uint64_t rflags = 0x202;  // IF: delivery is governed by the upcall mask, which starts set
};

struct Built {
    StartOfDay layout;
    InitialRegisters registers;
    Port console_port{0};  // the console ring's channel; 0 for the initial domain
    Port store_port{0};    // the xenstore ring's channel; 0 for the initial domain or without a store
};

// Builds a domain created with Domains::create and not yet run. On failure the domain holds what
// was done so far; destroy it.
class DomainBuilder {
public:
    explicit DomainBuilder(domain::Domains& domains) : domains_{domains} {}

    BuildError build(domain::Domain& domain, const ElfImage& kernel, const BuildOptions& options, Built& built);

private:
    std::uint64_t& p2m_entry(std::uint64_t pfn);  // in the p2m list being built
    Mfn frame_of(std::uint64_t pfn);
    std::byte* map_pfn(std::uint64_t pfn);
    BuildError allocate_memory(domain::Domain& domain, const StartOfDay& layout);
    void load(const ElfImage& kernel, const BuildOptions& options, const StartOfDay& layout);
    void fill_start_info(domain::Domain& domain, const BuildOptions& options, const StartOfDay& layout,
                         const ElfImage& kernel, Port console_port, Port store_port);
    Mfn build_page_tables(const StartOfDay& layout);
    void set_time(domain::Domain& domain, const StartTime& time);

    domain::Domains& domains_;
    std::array<std::uint64_t, max_p2m_frames> p2m_frames_{};  // the machine frames of the p2m list
};

}  // namespace hv::builder
