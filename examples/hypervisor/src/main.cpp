// SPDX-License-Identifier: BSD-2-Clause
// First C++ code after boot/entry.S: take over the memory the PVH loader reports, build a domain
// from the kernel image given as the first module (QEMU's -initrd), then leave QEMU through
// isa-debug-exit with the status asked for on the command line.
#include <algorithm>
#include <array>
#include <cstdint>
#include <new>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include <hv/boot_bundle.hpp>
#include <hv/builder.hpp>
#include <hv/xenstore_devices.hpp>
#include <pvkit/abi.hpp>

#include "boot_memory.hpp"
#include "cpu.hpp"
#include "clock.hpp"
#include "cpu_tables.hpp"
#include "guest_run.hpp"
#include "machine.hpp"
#include "memory_layout.hpp"
#include "serial.hpp"
#include "store_memory.hpp"

// The image's extent (hypervisor.ld).
extern "C" char __image_start[], __bss_end[];

namespace hypervisor {
namespace {

namespace abi = pvkit::abi;

// Bound on how far we read a command line, so a missing NUL cannot run us off.
constexpr std::uint64_t max_cmdline = 4096;

constexpr Serial console{Serial::com1};

std::string_view read_cmdline(const abi::hvm_start_info& info) {
    if (info.cmdline_paddr == 0) {
        return {};
    }
    const char* text = phys_to_virt<const char>(info.cmdline_paddr, max_cmdline);
    if (text == nullptr) {
        return {};
    }
    std::uint64_t length = 0;
    while (length < max_cmdline && text[length] != '\0') {
        ++length;
    }
    return {text, length};
}

// Value of the first "exit=N" word, N decimal in 0..255; nullopt if absent or malformed.
// Indexes by hand: string_view::find/substr would pull in memchr and throwing checks.
std::optional<std::uint8_t> parse_exit_status(std::string_view cmdline) {
    constexpr std::string_view key = "exit=";
    std::size_t pos = 0;
    while (pos < cmdline.size()) {
        std::size_t end = pos;
        while (end < cmdline.size() && cmdline[end] != ' ') {
            ++end;
        }
        const std::string_view word{cmdline.data() + pos, end - pos};
        pos = end + 1;
        if (word.size() < key.size() ||
            std::string_view{word.data(), key.size()} != key) {
            continue;
        }
        const std::size_t digits = word.size() - key.size();
        if (digits == 0 || digits > 3) {
            return std::nullopt;
        }
        unsigned value = 0;
        for (std::size_t i = key.size(); i < word.size(); ++i) {
            const char c = word[i];
            if (c < '0' || c > '9') {
                return std::nullopt;
            }
            value = value * 10 + static_cast<unsigned>(c - '0');
        }
        if (value > 255) {
            return std::nullopt;
        }
        return static_cast<std::uint8_t>(value);
    }
    return std::nullopt;
}

// The loader's modules (QEMU's -initrd), or an empty span.
std::span<const abi::hvm_modlist_entry> modules(const abi::hvm_start_info& info) {
    if (info.nr_modules == 0 || info.modlist_paddr == 0)
        return {};
    const auto* list = phys_to_virt<const abi::hvm_modlist_entry>(
        info.modlist_paddr, std::uint64_t{info.nr_modules} * sizeof(abi::hvm_modlist_entry));
    return list == nullptr ? std::span<const abi::hvm_modlist_entry>{} : std::span{list, info.nr_modules};
}

// RAM from the PVH memory map, minus low memory, this image and the modules; false with a message
// when there is no usable map.
bool survey_memory(const abi::hvm_start_info& info, BootMemory& memory) {
    const auto* map = info.version >= 1 && info.memmap_paddr != 0
                          ? phys_to_virt<const abi::hvm_memmap_table_entry>(
                                info.memmap_paddr, std::uint64_t{info.memmap_entries} * sizeof(abi::hvm_memmap_table_entry))
                          : nullptr;
    if (map == nullptr) {
        console.write("memory: no PVH memory map\n");
        return false;
    }
    for (std::uint32_t i = 0; i < info.memmap_entries; ++i) {
        if (map[i].type != abi::XEN_HVM_MEMMAP_TYPE_RAM || map[i].addr >= boot_mapped_limit)
            continue;
        const std::uint64_t end = map[i].size > boot_mapped_limit - map[i].addr ? boot_mapped_limit : map[i].addr + map[i].size;
        memory.add_ram(map[i].addr, end);
    }
    // Low memory holds the loader's tables (start info, memory map, command line). A reservation
    // that does not fit in the table would let the heap hand out memory in use: give up instead.
    bool reserved = memory.reserve(0, 1 << 20) &&
                    memory.reserve(reinterpret_cast<std::uint64_t>(__image_start) - virt_offset,
                                   reinterpret_cast<std::uint64_t>(__bss_end) - virt_offset);
    for (const abi::hvm_modlist_entry& module : modules(info))
        reserved = reserved && memory.reserve(module.paddr, module.paddr + module.size);
    if (!reserved)
        console.write("memory: too many ranges in use to track\n");
    return reserved;
}

// Zeroed pages carved from boot memory, through the boot window; nullptr if there is no room.
std::byte* carve_zeroed(BootMemory& memory, std::uint64_t size) {
    size = (size + BootMemory::page - 1) / BootMemory::page * BootMemory::page;
    const auto start = memory.carve(size);
    std::byte* pages = start ? phys_to_virt<std::byte>(*start, size) : nullptr;
    if (pages != nullptr)
        for (std::uint64_t i = 0; i < size; ++i)
            pages[i] = std::byte{0};
    return pages;
}

std::uint64_t virt_to_phys(const void* pointer) { return reinterpret_cast<std::uint64_t>(pointer) - virt_offset; }

// Every 64-bit PV guest reads the M2P at MACH2PHYS_VIRT_START, read-only (Linux and Mini-OS turn
// machine frames into their own with it). Mapped in the boot L4's slot for that address, which
// every guest L4 receives with the hypervisor's other slots; its pages hold nothing but the M2P.
bool map_machine_to_phys(BootMemory& memory, const std::uint64_t* machine_to_phys, std::uint64_t bytes) {
    constexpr std::uint64_t present = 1, user = 4, no_execute = 1ull << 63;
    const std::uint64_t pages = (bytes + BootMemory::page - 1) / BootMemory::page;
    const std::uint64_t l1_count = (pages + 511) / 512;
    if (l1_count > 512)
        return false;  // more than the 1 GiB of M2P one L2 maps: beyond the boot window anyway
    auto* tables = reinterpret_cast<std::uint64_t*>(carve_zeroed(memory, (2 + l1_count) * BootMemory::page));
    if (tables == nullptr)
        return false;
    std::uint64_t* l3 = tables;
    std::uint64_t* l2 = tables + 512;
    std::uint64_t* l1s = tables + 1024;
    for (std::uint64_t page = 0; page < pages; ++page)
        l1s[page] = (virt_to_phys(machine_to_phys) + page * BootMemory::page) | present | user | no_execute;
    for (std::uint64_t l1 = 0; l1 < l1_count; ++l1)
        l2[l1] = virt_to_phys(l1s + 512 * l1) | present | user;
    l3[0] = virt_to_phys(l2) | present | user;
    auto* l4 = phys_to_virt<std::uint64_t>(cpu::read_cr3() & ~std::uint64_t{0xFFF}, BootMemory::page);
    l4[(abi::MACH2PHYS_VIRT_START >> 39) & 511] = virt_to_phys(l3) | present | user;
    return true;
}

// The frame table over all RAM, its storage carved from RAM itself, every free page in its heap.
hv::mm::FrameTable* take_over_memory(BootMemory& memory, hv::mm::MemoryPlatform& platform) {
    const std::uint64_t frame_count = memory.top() / BootMemory::page;
    std::byte* info_storage = carve_zeroed(memory, frame_count * sizeof(hv::mm::PageInfo));
    auto* machine_to_phys = reinterpret_cast<std::uint64_t*>(carve_zeroed(memory, frame_count * sizeof(std::uint64_t)));
    if (info_storage == nullptr || machine_to_phys == nullptr ||
        !map_machine_to_phys(memory, machine_to_phys, frame_count * sizeof(std::uint64_t))) {
        console.write("memory: no room for the frame table\n");
        return nullptr;
    }
    auto* infos = new (info_storage) hv::mm::PageInfo[frame_count];
    static hv::mm::FrameTable frames{platform, std::span{infos, frame_count}, std::span{machine_to_phys, frame_count}};
    memory.for_each_free([](std::uint64_t start, std::uint64_t end) {
        frames.add_to_heap(hv::Mfn{start / BootMemory::page}, (end - start) / BootMemory::page);
    });
    console.write("memory: ");
    console.write_decimal(memory.top() >> 20);
    console.write(" MiB, ");
    console.write_decimal(frames.free_frames() * BootMemory::page >> 20);
    console.write(" MiB free for domains\n");
    return &frames;
}

// The store's quotas: xenstored's defaults (hv/xenstore.hpp), 64 KiB of blocks per domain.
constexpr hv::xenstore::Limits store_limits{};

// The xenstore's arena for `domains` domains: what may be live at once, every domain at its byte
// quota plus the toolstack's own blocks, once per size class (store_memory.hpp says why). The
// toolstack's part: "/", "/local", "/local/domain" and the domain records (64 KiB, also room for
// the old copies of the one path a change holds until it swaps the root), and per domain the old
// versions of those three nodes that its open transactions may keep alive (10 transactions, each
// under 1 KiB with 64 domains: 8 KiB). 1 domain: 1.3 MiB; 4: 3.4 MiB; 64: 46 MiB.
std::uint64_t store_arena_size(std::size_t domains) {
    constexpr std::uint64_t toolstack = 64 * 1024, toolstack_per_domain = 8 * 1024;
    const std::uint64_t live = domains * (store_limits.bytes_per_domain + toolstack_per_domain) + toolstack;
    return (StoreArena::size_classes * live + BootMemory::page - 1) / BootMemory::page * BootMemory::page;
}

// The xenstore's memory, carved from RAM. Not zeroed: the store initializes what it allocates.
StoreArena* carve_store_memory(BootMemory& memory, std::size_t domains) {
    const std::uint64_t size = store_arena_size(domains);
    const auto start = memory.carve(size);
    std::byte* region = start ? phys_to_virt<std::byte>(*start, size) : nullptr;
    if (region == nullptr) {
        console.write("memory: no room for the xenstore\n");
        return nullptr;
    }
    static StoreArena arena{region, size};
    return &arena;
}

template <std::size_t... vcpu>
std::array<hv::mm::VcpuMmu, sizeof...(vcpu)> vcpu_mmus(hv::DomId id, std::index_sequence<vcpu...>) {
    return {((void)vcpu, hv::mm::VcpuMmu{.domain = id})...};
}

// What one domain is given: its ports, grant table and the state of its `vcpu_count` vCPUs, and
// the domain itself.
struct DomainSlot {
    DomainSlot(const hv::domain::DomainConfig& config, std::uint32_t vcpu_count, hv::console::ConsoleSink& sink)
        : vcpu_memory{vcpu_mmus(config.id, std::make_index_sequence<hv::builder::max_domain_vcpus>{})},
          domain{config,
                 {ports,
                  {grant_frames, active, maptrack},
                  {vcpus.data(), vcpu_count},
                  {vcpu_memory.data(), vcpu_count},
                  {vcpu_events.data(), vcpu_count}},
                 sink} {}

    std::array<hv::evtchn::PortEntry, 1024> ports{};
    std::array<std::uint64_t, 4> grant_frames{};
    std::array<hv::gnttab::ActiveEntry, 4 * hv::gnttab::entries_per_frame> active{};
    std::array<hv::gnttab::MaptrackEntry, 256> maptrack{};
    std::array<hv::domain::Vcpu, hv::builder::max_domain_vcpus> vcpus{};
    std::array<hv::mm::VcpuMmu, hv::builder::max_domain_vcpus> vcpu_memory;
    std::array<hv::evtchn::EvtchnVcpu, hv::builder::max_domain_vcpus> vcpu_events{};
    hv::domain::Domain domain;
};

// The bundle being run, for domains built again (on_reboot = "restart" ...).
struct RunningBundle {
    std::span<const hv::builder::BundledDomain> wanted;
    DomainSlot* slots = nullptr;
    hv::domain::Domains* domains = nullptr;
    // Each entry's domain id, as last built: entry n is first domain n + 1, and a restart gives it
    // a new id (0: not built).
    std::array<std::uint16_t, hv::builder::max_bundle_domains> ids{};
};
RunningBundle bundle;

bool build_domain(std::size_t entry, hv::DomId id, hv::domain::Domains& domains, DomainSlot* slot,
                  hv::builder::Built& built);

hv::xenstore::BlockDevice block_device(std::size_t entry, const hv::builder::BundleDisk& disk) {
    return {.frontend = hv::DomId{bundle.ids[entry]},
            .backend = hv::DomId{bundle.ids[disk.backend_domain]},
            .virtual_device = disk.device_id,
            .dev = disk.vdev,
            .params = disk.target,
            .writable = disk.writable};
}

// As the toolstack: bundle entry `entry`'s disk written in the xenstore (frontend and backend
// directories, as libxl writes them); a disk whose other end is not running is reported.
void add_disk(std::size_t entry, const hv::builder::BundleDisk& disk) {
    const std::string_view name = bundle.wanted[entry].config.name;
    console.write(name);
    console.write(": disk ");
    console.write(disk.vdev);
    if (const auto added = hv::xenstore::add_block_device(*bundle.domains->store(), block_device(entry, disk)); added) {
        console.write(" (vbd ");
        console.write_decimal(disk.device_id);
        console.write(", ");
        console.write(disk.writable ? "read-write" : "read-only");
        console.write(") served by ");
    } else {
        console.write(": error ");
        console.write_decimal(static_cast<std::uint64_t>(added.error()));
        console.write(" adding it to the xenstore, from ");
    }
    console.write(bundle.wanted[disk.backend_domain].config.name);
    console.write(" as ");
    console.write(disk.target);
    console.write("\n");
}

// The disks bundle entry `entry` has as a frontend; with `served`, also those it serves as the
// backend (a restarted backend's devices are written again, naming its new id).
void add_disks(std::size_t entry, bool served) {
    for (std::size_t frontend = 0; frontend < bundle.wanted.size(); ++frontend)
        for (const hv::builder::BundleDisk& disk : bundle.wanted[frontend].config.disk_list())
            if (frontend == entry || (served && disk.backend_domain == entry))
                add_disk(frontend, disk);
}

// A destroyed domain's block devices go from the xenstore, those it had and those it served, as
// libxl removes them: the other end's watch on its directory tells it.
void remove_disks(hv::DomId id) {
    if (bundle.domains == nullptr || bundle.domains->store() == nullptr)
        return;
    const auto gone =
        std::find(bundle.ids.begin(), bundle.ids.begin() + static_cast<std::ptrdiff_t>(bundle.wanted.size()), id.value);
    const auto entry = static_cast<std::size_t>(gone - bundle.ids.begin());
    if (entry == bundle.wanted.size())
        return;
    for (std::size_t frontend = 0; frontend < bundle.wanted.size(); ++frontend)
        for (const hv::builder::BundleDisk& disk : bundle.wanted[frontend].config.disk_list())
            if (frontend == entry || disk.backend_domain == entry)
                (void)hv::xenstore::remove_split_device(*bundle.domains->store(),
                                                        hv::xenstore::split_device_of(block_device(frontend, disk)));
    bundle.domains->serve_waiting_store_connections();  // the other ends' watch events
}

// Bundle entry `entry` built again in its slot, whose last domain is destroyed (RebuildDomain).
hv::domain::Domain* rebuild(std::size_t entry, hv::DomId id, hv::builder::InitialRegisters& registers) {
    DomainSlot* slot = &bundle.slots[entry];
    slot->~DomainSlot();
    hv::builder::Built built;
    if (!build_domain(entry, id, *bundle.domains, slot, built))
        return nullptr;
    add_disks(entry, true);
    registers = built.registers;
    return &slot->domain;
}

// What the initrd asks for: a boot bundle (docs/builder.md), or a bare kernel image run with the
// defaults. Empty, with the reason printed, when it cannot be read.
std::span<const hv::builder::BundledDomain> read_initrd(std::span<const std::byte> initrd) {
    constexpr std::string_view cpio_magic = "070701";
    static hv::builder::Bundle bundle;
    const bool is_bundle = initrd.size() >= cpio_magic.size() &&
                           std::string_view{reinterpret_cast<const char*>(initrd.data()), cpio_magic.size()} == cpio_magic;
    if (!is_bundle) {
        hv::builder::BundleDomain defaults;  // a bundle's defaults: 16 MiB, one vCPU
        defaults.name = "dom1";
        defaults.kernel = "initrd";
        bundle.domains[0] = {defaults, {}, initrd, {}};
        bundle.domain_count = 1;
        return bundle.list();
    }
    const auto error = hv::builder::read_bundle(initrd, bundle);
    if (error.code != hv::builder::BundleErrc::none) {
        console.write("boot bundle refused: ");
        console.write(hv::builder::describe(error.code));
        if (!error.file.empty()) {
            console.write(": ");
            console.write(error.file);
        }
        if (error.code == hv::builder::BundleErrc::bad_config) {
            console.write(", line ");
            console.write_decimal(error.config.line);
            console.write(": ");
            console.write(hv::builder::describe(error.config.code));
        }
        console.write("\n");
        return {};
    }
    return bundle.list();
}

// Whether bundle entry `entry` is the initial domain (SIF_INITDOMAIN, Xen's dom0): the first
// privileged one. It has no console ring or xenstore page: it writes and reads the hypervisor's
// console with console_io, told of input by VIRQ_CONSOLE.
bool is_initial_domain(std::size_t entry) {
    const auto privileged = [](const hv::builder::BundledDomain& domain) { return domain.config.privileged; };
    return bundle.wanted[entry].config.privileged &&
           std::none_of(bundle.wanted.begin(), bundle.wanted.begin() + static_cast<std::ptrdiff_t>(entry), privileged);
}

// Bundle entry `entry`, built in `slot` as domain `id`; false with a message when it cannot be
// (what was created of it then stays, never run).
bool build_domain(std::size_t entry, hv::DomId id, hv::domain::Domains& domains, DomainSlot* slot,
                  hv::builder::Built& built) {
    const hv::builder::BundledDomain& wanted = bundle.wanted[entry];
    const hv::builder::BundleDomain& config = wanted.config;
    const auto refuse = [&](std::string_view why, std::string_view detail) {
        console.write(config.name);
        console.write(": ");
        console.write(why);
        console.write(detail);
        console.write("\n");
        return false;
    };
    static hv::builder::ElfImage image;
    if (const auto error = hv::builder::parse_image(wanted.kernel, image); error != hv::builder::ImageError::none)
        return refuse("the kernel image is refused: ", hv::builder::describe(error));
    static std::array<char, pvkit::abi::MAX_GUEST_CMDLINE> command_line;
    const std::size_t command_line_length = config.cmdline.decode(command_line);
    if (command_line_length >= command_line.size())
        return refuse("cannot be built: ", hv::builder::describe(hv::builder::BuildError::command_line_too_long));
    static SerialSink sink{console};
    hv::domain::Domain& domain = (new (slot) DomainSlot{{.id = id,
                                                         .name = config.name,
                                                         .max_pages = config.memory_pages() + 2,
                                                         .privileged = config.privileged,
                                                         .console_write = true},
                                                        config.vcpus, sink})
                                     ->domain;
    if (const auto created = domains.create(domain); !created)
        return refuse("cannot be created", "");
    bundle.ids[entry] = id.value;
    static hv::builder::DomainBuilder builder{domains};
    const auto error = builder.build(domain, image,
                                     {.memory_pages = config.memory_pages(),
                                      .ramdisk = wanted.ramdisk,
                                      .command_line = {command_line.data(), command_line_length},
                                      .initial_domain = is_initial_domain(entry),
                                      .time = {.system_time_ns = clock::now_ns(),
                                               .tsc_timestamp = cpu::read_tsc(),
                                               .tsc_to_system_mul = clock::scale().mul,
                                               .tsc_shift = clock::scale().shift,
                                               .wallclock_sec = clock::wall_clock_at_boot().sec,
                                               .wallclock_nsec = clock::wall_clock_at_boot().nsec}},
                                     built);
    if (error != hv::builder::BuildError::none)
        return refuse("cannot be built: ", hv::builder::describe(error));
    console.write(config.name);
    console.write(": built, ");
    console.write_decimal(config.memory_mib);
    console.write(" MiB, entry ");
    console.write_hex(built.registers.rip);
    console.write(", start_info ");
    console.write_hex(built.registers.rsi);
    console.write(", stack ");
    console.write_hex(built.registers.rsp);
    console.write(", ");
    console.write_decimal(built.layout.page_table_pages);
    console.write(" page-table frames\n");
    return true;
}

}  // namespace
}  // namespace hypervisor

extern "C" void hv_main(std::uint64_t hvm_start_info_paddr) {
    using namespace hypervisor;
    console.init();
    console.write("pvkit hypervisor 0.1 (Xen x86-64 PV ABI subset)\n");
    load_cpu_tables();
    // The PIT counts for the TSC's calibration while memory is taken over and the initrd read,
    // work that takes about as long as the calibration needs.
    clock::init();

    // entry.S already checked the magic; the pointer is still the loader's word.
    const auto* info = phys_to_virt<const abi::hvm_start_info>(hvm_start_info_paddr);
    if (info == nullptr) {
        console.write("hvm_start_info outside the boot window; halting\n");
        cpu::halt_forever();
    }
    const std::string_view cmdline = read_cmdline(*info);
    console.write("cmdline: ");
    console.write(cmdline);
    console.write("\n");

    static BootMemory memory;
    static DirectMap direct_map;
    const bool surveyed = survey_memory(*info, memory);
    const auto loaded = modules(*info);
    std::span<const hv::builder::BundledDomain> wanted;
    if (surveyed && !loaded.empty()) {
        const auto* initrd = phys_to_virt<const std::byte>(loaded[0].paddr, loaded[0].size);
        if (initrd == nullptr)
            console.write("the initrd lies outside the boot window\n");
        else
            wanted = read_initrd({initrd, loaded[0].size});
    }
    // The store's memory, the domains' slots and their vCPUs' contexts are carved before the rest
    // of RAM becomes the domains' heap.
    StoreArena* store_memory = surveyed ? carve_store_memory(memory, wanted.size()) : nullptr;
    auto* slots = reinterpret_cast<DomainSlot*>(carve_zeroed(memory, wanted.size() * sizeof(DomainSlot)));
    std::size_t vcpu_count = 0;
    for (const hv::builder::BundledDomain& domain : wanted)
        vcpu_count += domain.config.vcpus;
    std::byte* contexts = carve_zeroed(memory, vcpu_count * guest_vcpu_size());
    const bool carved = store_memory != nullptr && (wanted.empty() || (slots != nullptr && contexts != nullptr));
    if (!carved)
        console.write("memory: no room for the domains' own state\n");
    hv::mm::FrameTable* frames = carved ? take_over_memory(memory, direct_map) : nullptr;

    clock::wait_for_calibration();
    console.write("clock: TSC at ");
    console.write_decimal(clock::tsc_hz() / 1'000'000);
    if (const std::uint64_t wall = clock::wall_clock_at_boot().sec; wall != 0) {
        console.write(" MHz; wall clock ");
        console.write_decimal(wall);
        console.write(" s since 1970 at boot (CMOS RTC)\n");
    } else {
        console.write(" MHz; no wall clock (no CMOS RTC answers)\n");
    }

    if (frames != nullptr && !wanted.empty()) {
        static hv::mm::PageTables tables{*frames};
        static Host host{console, remove_disks};
        // Built in place and never destroyed: a static Store would register its destructor (out
        // of line, in the library) for exit, taking its address through the GOT.
        alignas(hv::xenstore::Store) static std::byte store_storage[sizeof(hv::xenstore::Store)];
        auto* store = new (store_storage) hv::xenstore::Store{*store_memory, store_limits};
        static hv::domain::Domains domains{tables, host, store};
        const std::uint64_t free_frames_before = frames->free_frames();
        bundle = {wanted, slots, &domains};
        std::size_t built_count = 0;
        std::byte* vcpu_storage = contexts;
        for (std::size_t index = 0; index < wanted.size(); ++index) {
            hv::builder::Built built;
            const hv::builder::BundleDomain& config = wanted[index].config;
            if (build_domain(index, hv::DomId{static_cast<std::uint16_t>(index + 1)}, domains, &slots[index], built)) {
                add_guest_domain(domains, slots[index].domain, built.registers, vcpu_storage, index,
                                 {config.on_poweroff, config.on_reboot, config.on_crash});
                ++built_count;
            }
            vcpu_storage += config.vcpus * guest_vcpu_size();
        }
        for (std::size_t index = 0; index < wanted.size(); ++index)
            add_disks(index, false);
        if (built_count != 0)
            run_domains(built_count == wanted.size(), free_frames_before, rebuild);
    } else if (frames != nullptr && loaded.empty()) {
        console.write("no domain: give a boot bundle or a kernel image as the initrd\n");
    }

    // Here no domain ran: with an initrd given, that is a failure (its reason is printed above).
    const std::uint8_t status = parse_exit_status(cmdline).value_or(loaded.empty() ? 0 : 1);
    console.write("exiting with status ");
    console.write_decimal(status);
    console.write("\n");
    cpu::exit_qemu(status);
}
