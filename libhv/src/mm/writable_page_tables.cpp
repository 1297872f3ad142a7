// Writable page tables: the emulator's memory is one L1 page, and each store to it is an
// update_entry of the entry it touches.
#include <cstring>

#include <hv/writable_page_tables.hpp>

namespace hv::mm {
namespace {

constexpr std::uint64_t page_mask = page_size - 1;

class L1PageMemory final : public emulate::Memory {
public:
    L1PageMemory(PageTables& tables, MmuCaller& caller, Mfn l1, std::uint64_t page_address)
        : tables_{tables}, caller_{caller}, l1_{l1}, page_address_{page_address} {}

    Result<void> fetch(Vaddr address, std::span<std::byte> into) override {
        if (!caller_.memory.read(address, into))
            return Errc::efault;
        return {};
    }
    Result<void> read(Vaddr address, std::span<std::byte> into) override {
        const auto entry = locate(address, into.size());
        if (!entry)
            return entry.error();
        const std::uint64_t value = tables_.read_entry(l1_, entry->index);
        std::memcpy(into.data(), reinterpret_cast<const std::byte*>(&value) + entry->offset, into.size());
        return {};
    }
    Result<void> write(Vaddr address, std::span<const std::byte> from) override {
        const auto entry = locate(address, from.size());
        if (!entry)
            return entry.error();
        std::uint64_t value = tables_.read_entry(l1_, entry->index);
        std::memcpy(reinterpret_cast<std::byte*>(&value) + entry->offset, from.data(), from.size());
        return tables_.update_entry(caller_.domain, caller_.domain, l1_, entry->index, value, false);
    }
    Result<bool> compare_exchange(Vaddr address, std::span<std::byte> expected,
                                  std::span<const std::byte> desired) override {
        std::byte current[16];
        if (auto found = read(address, std::span{current}.first(expected.size())); !found)
            return found.error();
        if (std::memcmp(current, expected.data(), expected.size()) != 0) {
            std::memcpy(expected.data(), current, expected.size());
            return false;
        }
        if (auto stored = write(address, desired); !stored)
            return stored.error();
        return true;
    }

private:
    struct EntryBytes {
        unsigned index;
        unsigned offset;
    };

    // The entry that [address, address + size) falls in: the access must stay inside one entry
    // of the faulting page (a 16-byte cmpxchg16b spans two, and is refused).
    Result<EntryBytes> locate(Vaddr address, std::size_t size) const {
        const std::uint64_t offset = address.value - page_address_;
        if (address.value < page_address_ || offset >= page_size || size == 0 || size > 8 ||
            (offset & 7) + size > 8)
            return Errc::efault;
        return EntryBytes{static_cast<unsigned>(offset >> 3), static_cast<unsigned>(offset & 7)};
    }

    PageTables& tables_;
    MmuCaller& caller_;
    Mfn l1_;
    std::uint64_t page_address_;
};

}  // namespace

Result<void> emulate_page_table_write(PageTables& tables, MmuCaller& caller, emulate::Registers& registers,
                                      std::uint64_t fault_address) {
    if (!caller.domain.writable_pagetables)
        return Errc::eperm;
    const auto slot = tables.locate_l1_entry(caller.vcpu, fault_address);
    if (!slot)
        return slot.error();
    const std::uint64_t mapping = tables.read_entry(slot->table, slot->index);
    const auto frame = pte::frame(mapping);
    if (!(mapping & pte::present) || !tables.frames().is_valid(frame))
        return Errc::einval;
    const PageInfo& page = tables.frames().info(frame);
    if (page.owner != caller.domain.id || page.type != PageType::l1)
        return Errc::einval;
    L1PageMemory memory{tables, caller, frame, fault_address & ~page_mask};
    emulate::Registers scratch = registers;  // registers change only if the whole instruction succeeds
    if (auto done = emulate::emulate_instruction(scratch, memory); !done)
        return done.error();
    registers = scratch;
    return {};
}

}  // namespace hv::mm
