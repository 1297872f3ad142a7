// Segment descriptors in a PV guest's GDT and LDT pages: update_descriptor, and the validation a
// frame passes when it becomes a descriptor page.
//
// What a 64-bit PV guest may install (Xen's rules): a descriptor that is not present, anything;
// a code or data descriptor, with its privilege level raised to 3 (the guest kernel runs in ring 3,
// so a lower DPL would let it give itself ring 0); no system descriptors (TSS, LDT, gates): those
// are the hypervisor's. The descriptor's address must be 8-byte aligned, in a frame of the caller
// that is a descriptor page or can be writable.
//
// While a frame is a descriptor page it is mapped read-only everywhere and this file's
// write_descriptor is the only way its contents change, so a platform may copy the descriptors
// into the CPU's GDT instead of mapping the frame: it hears of every write to a descriptor page
// (MemoryPlatform::descriptor_changed) and of every new GDT (gdt_changed, from PageTables::set_gdt).
#include <array>
#include <cstring>

#include <hv/descriptors.hpp>

namespace hv::mm {

Result<std::uint64_t> check_descriptor(std::uint64_t value) {
    if (!(value & descriptor::present))
        return value;
    if (!(value & descriptor::code_or_data))
        return Errc::einval;
    return value | descriptor::dpl;
}

Result<void> validate_descriptor_page(std::span<std::uint64_t, entries_per_table> descriptors) {
    for (const std::uint64_t descriptor : descriptors) {
        if (!check_descriptor(descriptor))
            return Errc::einval;
    }
    for (std::uint64_t& descriptor : descriptors)
        descriptor = *check_descriptor(descriptor);
    return {};
}

Result<void> write_descriptor(PageTables& tables, DomainMemory& domain, std::uint64_t machine_address,
                              std::uint64_t descriptor) {
    FrameTable& frames = tables.frames();
    const Mfn frame{machine_address >> 12};
    const auto checked = check_descriptor(descriptor);
    if ((machine_address & 7) != 0 || !checked)
        return Errc::einval;
    if (!frames.get_page(frame, domain))
        return Errc::einval;
    const PageType type = frames.info(frame).type == PageType::seg_desc ? PageType::seg_desc : PageType::writable;
    if (!tables.get_type(frame, type, domain)) {
        frames.put_page(frame);
        return Errc::einval;
    }
    const auto offset = static_cast<unsigned>(machine_address & (page_size - 1));
    std::memcpy(frames.platform().map(frame) + offset, &*checked, sizeof(descriptor));
    if (type == PageType::seg_desc)
        frames.platform().descriptor_changed(domain, frame, offset / sizeof(descriptor), *checked);
    tables.put_type(frame);
    frames.put_page(frame);
    return {};
}

long update_descriptor(PageTables& tables, MmuCaller& caller, const hypercall_args::update_descriptor& args) {
    return write_descriptor(tables, caller.domain, args.ma, args.desc).xen_errno();
}

long set_gdt(PageTables& tables, MmuCaller& caller, const hypercall_args::set_gdt& args) {
    if (args.entries > pvkit::abi::FIRST_RESERVED_GDT_ENTRY)
        return xen_errno(Errc::einval);
    std::array<pvkit::abi::xen_ulong_t, max_gdt_frames> frames{};
    const auto needed = std::span{frames}.first((args.entries + entries_per_table - 1) / entries_per_table);
    if (const auto copied = copy_array_from_guest(caller.memory, args.frame_list, 0, needed); !copied)
        return copied.xen_errno();
    return tables.set_gdt(caller.domain, caller.vcpu, needed, args.entries).xen_errno();
}

}  // namespace hv::mm
