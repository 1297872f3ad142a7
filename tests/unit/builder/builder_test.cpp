// The domain builder, on a kernel described directly as an ElfImage (elf_image_test.cpp covers
// reading one from bytes): the layout it plans, and the domain it builds as the guest sees it
// through its own page tables.
#include "../domain/domain_fixture.hpp"

#include <numeric>

#include <hv/builder.hpp>

namespace builder_test {
namespace {

using namespace domain_test;
using namespace hv::builder;

constexpr std::uint64_t virt_base = 0xFFFF'FFFF'8000'0000;
constexpr std::uint64_t text_size = 3 * 4096, data_file_size = 100, data_memory_size = 2 * 4096;

// A kernel of two segments: text (its second page the hypercall page), then data with a bss.
struct TestKernel {
    TestKernel() {
        bytes.resize(text_size + data_file_size);
        std::iota(reinterpret_cast<std::uint8_t*>(bytes.data()), reinterpret_cast<std::uint8_t*>(bytes.data() + bytes.size()),
                  std::uint8_t{1});
        image.bytes = bytes;
        image.segments[0] = {0, text_size, virt_base, 0, text_size, 5};
        image.segments[1] = {text_size, data_file_size, virt_base + text_size, text_size, data_memory_size, 6};
        image.segment_count = 2;
        image.notes.hypercall_page = virt_base + 4096;
        image.notes.required_features = 1u << abi::XENFEAT_writable_page_tables;
        image.virtual_start = virt_base;
        image.virtual_end = virt_base + text_size + data_memory_size;
        image.entry = virt_base + 0x10;
        image.virt_base = virt_base;
    }
    std::vector<std::byte> bytes;
    ElfImage image;
};

TEST_CASE("plan lays the start-of-day pages out after the kernel, mapped to a 4 MiB boundary", "[builder][plan]") {
    TestKernel kernel;
    StartOfDay layout;
    std::vector<std::byte> ramdisk(5000);
    REQUIRE(plan(kernel.image, {.memory_pages = 4096, .ramdisk = ramdisk}, false, layout) == BuildError::none);
    CHECK(layout.kernel_pfn == 0);
    CHECK(layout.kernel_pages == 5);
    CHECK(layout.ramdisk_pfn == 5);
    CHECK(layout.ramdisk_pages == 2);
    CHECK(layout.p2m_pfn == 7);
    CHECK(layout.p2m_pages == 8);  // 4096 entries of 8 bytes
    CHECK(layout.start_info_pfn == 15);
    CHECK(layout.store_pfn == 16);
    CHECK(layout.console_pfn == 17);
    CHECK(layout.page_table_pfn == 18);
    CHECK(layout.page_table_pages == 5);  // L4, L3, L2 and two L1s for 4 MiB
    CHECK(layout.stack_pfn == 23);
    CHECK(layout.mapped_pages == 1024);

    // The initial domain has no store or console page; a larger one maps more and needs more tables.
    REQUIRE(plan(kernel.image, {.memory_pages = 1 << 16, .initial_domain = true}, true, layout) == BuildError::none);
    CHECK(layout.start_info_pfn == 5 + 128);
    CHECK(layout.page_table_pfn == layout.start_info_pfn + 1);
    CHECK(layout.mapped_pages == 1024);
    std::vector<std::byte> large_ramdisk(6 << 20);
    REQUIRE(plan(kernel.image, {.memory_pages = 1 << 16, .ramdisk = large_ramdisk}, false, layout) == BuildError::none);
    CHECK(layout.mapped_pages == 2 * 1024);
    CHECK(layout.page_table_pages == 3 + 4);
}

TEST_CASE("plan refuses what it cannot build, saying why", "[builder][plan][hostile]") {
    TestKernel kernel;
    StartOfDay layout{};
    CHECK(plan(kernel.image, {.memory_pages = 1023}, false, layout) == BuildError::too_small);
    CHECK(plan(kernel.image, {.memory_pages = max_memory_pages + 1}, false, layout) == BuildError::too_large);
    CHECK(plan(kernel.image, {.memory_pages = 4096, .command_line = std::string(1024, 'x')}, false, layout) ==
          BuildError::command_line_too_long);
    kernel.image.notes.required_features |= 1u << abi::XENFEAT_dom0;
    CHECK(plan(kernel.image, {.memory_pages = 4096}, false, layout) == BuildError::missing_feature);
    CHECK(plan(kernel.image, {.memory_pages = 4096}, true, layout) == BuildError::none);
    kernel.image.notes.required_features = 1u << abi::XENFEAT_auto_translated_physmap;
    CHECK(plan(kernel.image, {.memory_pages = 4096}, true, layout) == BuildError::missing_feature);

    // A kernel just below the top of the lower half: its mapping would cross into the hole.
    TestKernel low;
    const std::uint64_t top = 0x0000'7FFF'FFE0'0000;
    low.image.virt_base = top;
    low.image.virtual_start = top;
    low.image.virtual_end = top + text_size;
    CHECK(plan(low.image, {.memory_pages = 4096}, false, layout) == BuildError::overlaps_hypervisor);
    CHECK(describe(BuildError::overlaps_hypervisor).find("hypervisor") != std::string_view::npos);
}

struct BuilderFixture : DomainFixture {
    BuilderFixture() { REQUIRE(domains.create(guest.domain)); }

    BuildError build(const BuildOptions& options) { return builder.build(guest.domain, kernel.image, options, built); }
    // The guest's view: its vCPU 0's page tables.
    template <class T>
    T read(std::uint64_t address) {
        T value;
        REQUIRE(memory.read(Vaddr{address}, std::as_writable_bytes(std::span{&value, 1})));
        return value;
    }

    TestKernel kernel;
    TestDomain guest{sink, {.id = DomId{1}, .name = "built", .max_pages = 4096 + 2, .console_write = true}};
    WalkingMemory memory{platform, guest.vcpu_memory[0]};
    DomainBuilder builder{domains};
    Built built;
};

TEST_CASE_METHOD(BuilderFixture, "a built domain finds the Xen start of day", "[builder][build]") {
    std::vector<std::byte> ramdisk(5000, std::byte{0xAB});
    REQUIRE(build({.memory_pages = 1024, .ramdisk = ramdisk, .command_line = "console=hvc0 quiet",
                   .time = {.system_time_ns = 1'000, .tsc_timestamp = 5'000, .tsc_to_system_mul = 0x8000'0000,
                            .tsc_shift = -1, .wallclock_sec = 1'800'000'000, .wallclock_nsec = 7}}) == BuildError::none);
    const StartOfDay& layout = built.layout;

    // Registers.
    CHECK(built.registers.rip == virt_base + 0x10);
    CHECK(built.registers.rsi == layout.address(layout.start_info_pfn));
    CHECK(built.registers.rsp == layout.address(layout.stack_pfn + 1));
    CHECK(built.registers.cs == 0xE033);
    CHECK(built.registers.ss == 0xE02B);

    // start_info, read through the guest's own mapping.
    const auto info = read<abi::start_info>(built.registers.rsi);
    CHECK(std::string_view{info.magic} == "xen-3.0-x86_64");
    CHECK(info.nr_pages == 1024);
    CHECK(info.shared_info == guest.domain.shared_info.value << 12);
    CHECK(info.flags == 0);
    CHECK(info.pt_base == layout.address(layout.page_table_pfn));
    CHECK(info.nr_pt_frames == layout.page_table_pages);
    CHECK(info.mfn_list == layout.address(layout.p2m_pfn));
    CHECK(info.mod_start == layout.address(layout.ramdisk_pfn));
    CHECK(info.mod_len == 5000);
    CHECK(std::string_view{reinterpret_cast<const char*>(info.cmd_line)} == "console=hvc0 quiet");
    CHECK(info.console.domU.evtchn == built.console_port.value);
    CHECK(built.console_port.value != 0);

    // The p2m list and the M2P agree, and each frame is the domain's.
    for (std::uint64_t pfn = 0; pfn < 1024; ++pfn) {
        const auto frame = read<std::uint64_t>(info.mfn_list + pfn * 8);
        REQUIRE(frames.machine_to_phys(Mfn{frame}) == pfn);
        REQUIRE(frames.info(Mfn{frame}).owner == DomId{1});
    }
    CHECK(read<std::uint64_t>(info.mfn_list + layout.store_pfn * 8) == info.store_mfn);
    CHECK(read<std::uint64_t>(info.mfn_list + layout.console_pfn * 8) == info.console.domU.mfn);

    // The kernel's bytes, its zeroed bss, the ramdisk and the hypercall page.
    CHECK(read<std::uint8_t>(virt_base) == 1);
    CHECK(read<std::uint8_t>(virt_base + 2 * 4096 + 7) == static_cast<std::uint8_t>(2 * 4096 + 8));
    CHECK(read<std::uint8_t>(virt_base + text_size + 99) == static_cast<std::uint8_t>(text_size + 100));
    CHECK(read<std::uint8_t>(virt_base + text_size + 100) == 0);
    CHECK(read<std::uint8_t>(virt_base + text_size + 4096 + 5) == 0);
    CHECK(read<std::uint8_t>(info.mod_start + 4999) == 0xAB);
    using Stub = std::array<std::uint8_t, 14>;
    CHECK(read<Stub>(virt_base + 4096 + 32 * abi::HYPERVISOR_mmu_update) ==
          Stub{0x51, 0x41, 0x53, 0xB8, 1, 0, 0, 0, 0x0F, 0x05, 0x41, 0x5B, 0x59, 0xC3});
    using IretStub = std::array<std::uint8_t, 12>;
    CHECK(read<IretStub>(virt_base + 4096 + 32 * abi::HYPERVISOR_iret) ==
          IretStub{0x51, 0x41, 0x53, 0x50, 0xB8, 23, 0, 0, 0, 0x0F, 0x05, 0xCC});

    // Page tables mapped read-only, the rest of the mapping writable, up to 4 MiB and no further.
    CHECK(memory.translate(info.pt_base, false) != nullptr);
    CHECK(memory.translate(info.pt_base + (layout.page_table_pages - 1) * 4096, true) == nullptr);
    CHECK(memory.translate(layout.address(layout.stack_pfn), true) != nullptr);
    CHECK(memory.translate(virt_base + 1024 * 4096 - 1, true) != nullptr);
    CHECK(memory.translate(virt_base + 1024 * 4096, false) == nullptr);
    const Mfn l4{guest.vcpu_memory[0].kernel_base->value};
    CHECK(frames.info(l4).type == PageType::l4);
    CHECK(frames.info(l4).has(PageInfo::pinned));

    // Time, events masked, and the assist the kernel requires.
    const abi::shared_info& shared = shared_info(guest);
    CHECK(shared.vcpu_info[0].time.version % 2 == 0);
    CHECK(shared.vcpu_info[0].time.tsc_to_system_mul == 0x8000'0000);
    CHECK(shared.vcpu_info[0].time.tsc_shift == -1);
    CHECK(shared.vcpu_info[0].time.system_time == 1'000);
    CHECK(shared.wc_sec == static_cast<std::uint32_t>(1'800'000'000));
    CHECK(shared.wc_nsec == 7);
    CHECK(shared.vcpu_info[0].evtchn_upcall_mask == 1);
    CHECK(guest.domain.memory.writable_pagetables);
    require_invariants({&guest});

    // The console page is served: the guest writes a line and signals.
    auto page = read<abi::xencons_interface>(layout.address(layout.console_pfn));
    for (char c : std::string_view{"booted\n"})
        page.out[page.out_prod++] = c;
    REQUIRE(memory.write(Vaddr{layout.address(layout.console_pfn)}, std::as_bytes(std::span{&page, 1})));
    REQUIRE(domains.event_channels().send(*guest.domain.events, built.console_port));
    CHECK(sink.text == "(built) booted\n");

    const auto free_before = frames.free_frames();
    REQUIRE(destroy(guest));
    CHECK(frames.free_frames() == free_before + 1024 + 2);
}

TEST_CASE_METHOD(BuilderFixture, "the initial domain gets the dom0 flags and no console or store page",
                 "[builder][build]") {
    TestDomain control{sink, {.id = DomId{0}, .name = "dom0", .max_pages = 2048 + 2, .privileged = true}};
    REQUIRE(domains.create(control.domain));
    REQUIRE(builder.build(control.domain, kernel.image, {.memory_pages = 2048, .initial_domain = true}, built) ==
            BuildError::none);
    WalkingMemory dom0_memory{platform, control.vcpu_memory[0]};
    abi::start_info info;
    REQUIRE(dom0_memory.read(Vaddr{built.registers.rsi}, std::as_writable_bytes(std::span{&info, 1})));
    CHECK(info.flags == (abi::SIF_PRIVILEGED | abi::SIF_INITDOMAIN));
    CHECK(info.store_mfn == 0);
    CHECK(info.console.domU.mfn == 0);
    CHECK(info.mod_len == 0);
    CHECK(built.console_port.value == 0);
    CHECK_FALSE(control.domain.console_ring);
}

TEST_CASE_METHOD(BuilderFixture, "a build that cannot finish leaves a domain that destroy frees entirely",
                 "[builder][build][hostile]") {
    const auto free_before = frames.free_frames();
    SECTION("more memory than the domain may have") {
        CHECK(build({.memory_pages = 4096 + 1}) == BuildError::over_budget);
    }
    SECTION("more memory than the heap has") {
        DomainMemory hog{DomId{90}, frame_count};
        REQUIRE(frames.add_domain(hog));
        while (frames.free_frames() > 1500)
            REQUIRE(frames.allocate(hog));
        CHECK(build({.memory_pages = 2048}) == BuildError::out_of_memory);
        while (!tables.relinquish(hog, {}, UINT32_MAX)) {
        }
        REQUIRE(frames.remove_domain(hog));
    }
    SECTION("a kernel requiring what the domain lacks") {
        kernel.image.notes.required_features |= 1u << abi::XENFEAT_supervisor_mode_kernel;
        CHECK(build({.memory_pages = 1024}) == BuildError::missing_feature);
    }
    CHECK(guest.domain.memory.tot_pages == 2);
    REQUIRE(destroy(guest));
    CHECK(frames.free_frames() == free_before + 2);
}

}  // namespace
}  // namespace builder_test
