// Checking a domain before boot, with the code the hypervisor runs: parse_image on the kernel (on
// the ELF inside it, for a bzImage), then plan() with the domain's memory, ramdisk, command line
// and privilege. A refusal names the file and says why in the words of describe(); for the two
// refusals a user can fix from the command line (too little memory, a feature only a privileged
// domain gets) it also says how.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "bundle_tool.hpp"

namespace pvkit_bundle {
namespace {

namespace builder = hv::builder;
namespace abi = pvkit::abi;

std::string hex(std::uint64_t value) {
    std::ostringstream out;
    out << "0x" << std::hex << value;
    return out.str();
}

// XENFEAT_ bits by name: those libelf knows in FEATURES, and the rest as numbers.
std::string feature_names(std::uint32_t bits) {
    static const std::pair<unsigned, const char*> names[] = {
        {abi::XENFEAT_writable_page_tables, "writable_page_tables"},
        {abi::XENFEAT_writable_descriptor_tables, "writable_descriptor_tables"},
        {abi::XENFEAT_auto_translated_physmap, "auto_translated_physmap"},
        {abi::XENFEAT_supervisor_mode_kernel, "supervisor_mode_kernel"},
        {abi::XENFEAT_pae_pgdir_above_4gb, "pae_pgdir_above_4gb"},
        {abi::XENFEAT_hvm_callback_vector, "hvm_callback_vector"},
        {abi::XENFEAT_dom0, "dom0"},
    };
    std::string text;
    for (unsigned bit = 0; bit < 32; ++bit) {
        if ((bits >> bit & 1) == 0)
            continue;
        std::string name = "bit " + std::to_string(bit);
        for (const auto& [number, known] : names)
            if (number == bit)
                name = known;
        text += (text.empty() ? "" : ", ") + name;
    }
    return text.empty() ? "none" : text;
}

builder::BuildOptions options_for(const DomainSpec& domain, const Bytes& ramdisk, std::uint64_t memory_pages) {
    return {.memory_pages = memory_pages, .ramdisk = ramdisk, .command_line = domain.cmdline};
}

// The least memory, in MiB, plan() accepts for this domain; 0 if none up to the builder's limit.
// Memory is mapped in 4 MiB steps, so only multiples of 4 MiB need trying.
std::uint64_t least_memory_mib(const DomainSpec& domain, const CheckedDomain& checked) {
    for (std::uint64_t mib = 4; mib * 256 <= builder::max_memory_pages; mib += 4) {
        builder::StartOfDay layout;
        if (builder::plan(checked.image, options_for(domain, checked.ramdisk_bytes, mib * 256), domain.privileged,
                          layout) == builder::BuildError::none)
            return mib;
    }
    return 0;
}

// Names the bzImage's payload in messages about the ELF taken out of it.
std::string unwrapped_from(const CheckedDomain& checked) {
    if (!checked.bzimage)
        return "";
    const std::string_view compression = compression_name(checked.bzimage->compression);
    return " (the ELF unwrapped from this bzImage's " + std::string(compression) + " payload)";
}

}  // namespace

Bytes read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::error_code ec;
    if (in && std::filesystem::is_directory(path, ec))
        throw Refusal(path.string() + ": cannot read: it is a directory");
    if (!in)
        throw Refusal(path.string() + ": cannot read: " + std::strerror(errno));
    std::vector<char> chars{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (in.bad())
        throw Refusal(path.string() + ": cannot read: " + std::strerror(errno));
    Bytes bytes(chars.size());
    std::memcpy(bytes.data(), chars.data(), chars.size());
    return bytes;
}

CheckedDomain check_domain(const DomainSpec& domain) {
    const std::string file = domain.kernel.string();
    CheckedDomain checked;
    checked.kernel_bytes = read_file(domain.kernel);
    checked.bzimage = unwrap_bzimage(domain.kernel, checked.kernel_bytes);
    if (!domain.ramdisk.empty())
        checked.ramdisk_bytes = read_file(domain.ramdisk);
    if (const auto error = builder::parse_image(checked.kernel_bytes, checked.image); error != builder::ImageError::none)
        throw Refusal(file + ": not a kernel the hypervisor can load" + unwrapped_from(checked) + ": " +
                      std::string(builder::describe(error)));

    const std::uint64_t pages = domain.memory_mib * 256;
    const auto error = builder::plan(checked.image, options_for(domain, checked.ramdisk_bytes, pages), domain.privileged,
                                     checked.layout);
    if (error == builder::BuildError::none)
        return checked;
    std::string message = file + ": cannot be built with " + std::to_string(domain.memory_mib) + " MiB" +
                          (domain.ramdisk.empty() ? "" : " and ramdisk " + domain.ramdisk.string()) + ": " +
                          std::string(builder::describe(error));
    if (error == builder::BuildError::too_small) {
        if (const auto least = least_memory_mib(domain, checked); least != 0)
            message += " (it needs at least " + std::to_string(least) + " MiB)";
    } else if (error == builder::BuildError::missing_feature) {
        message += " (it requires: " + feature_names(checked.image.notes.required_features) + ")";
        if (!domain.privileged && (checked.image.notes.required_features >> abi::XENFEAT_dom0 & 1))
            message += "; dom0 is provided to a privileged domain only";
    }
    throw Refusal(message);
}

std::string describe_checked(const DomainSpec& domain, const CheckedDomain& checked) {
    const builder::ElfImage& image = checked.image;
    const builder::XenNotes& notes = image.notes;
    const builder::StartOfDay& layout = checked.layout;
    std::ostringstream out;
    out << domain.kernel.string() << ": ok, a Xen PV kernel that fits " << domain.memory_mib << " MiB"
        << (domain.privileged ? " (privileged)" : "") << "\n";
    if (checked.bzimage)
        out << "  unwrapped from a bzImage: " << compression_name(checked.bzimage->compression) << " payload of "
            << checked.bzimage->compressed_bytes << " bytes, ELF of " << checked.kernel_bytes.size() << " bytes\n";
    out << "  notes: GUEST_OS \"" << notes.guest_os << "\", GUEST_VERSION \"" << notes.guest_version
        << "\", XEN_VERSION \"" << notes.xen_version << "\", LOADER \"" << notes.loader << "\"\n";
    out << "  features: supported " << feature_names(notes.supported_features) << "; required "
        << feature_names(notes.required_features) << "\n";
    out << "  image: " << hex(image.virtual_start) << "-" << hex(image.virtual_end) << " (" << image.loadable().size()
        << " segments), entry " << hex(image.entry) << ", virt_base " << hex(image.virt_base);
    if (notes.hypercall_page)
        out << ", hypercall page " << hex(*notes.hypercall_page);
    out << "\n";
    out << "  layout (pfn+pages): kernel " << layout.kernel_pfn << "+" << layout.kernel_pages << ", ramdisk "
        << layout.ramdisk_pfn << "+" << layout.ramdisk_pages << ", p2m " << layout.p2m_pfn << "+" << layout.p2m_pages
        << ", start_info " << layout.start_info_pfn << ", store " << layout.store_pfn << ", console "
        << layout.console_pfn << ", page tables " << layout.page_table_pfn << "+" << layout.page_table_pages
        << ", stack " << layout.stack_pfn << "; " << layout.mapped_pages << " of " << layout.nr_pages
        << " pages mapped\n";
    return out.str();
}

}  // namespace pvkit_bundle
