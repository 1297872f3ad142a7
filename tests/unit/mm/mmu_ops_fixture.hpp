// The memory hypercalls' test machine: MmFixture plus the caller's guest memory, preemption and a
// privileged dom0.
#pragma once

#include "mm_fixture.hpp"

#include <hv/memory_op.hpp>
#include <hv/mmu_ops.hpp>

namespace mm_test {
namespace abi = pvkit::abi;
namespace args = hv::hypercall_args;
using hv::Continuation;
using hv::GuestHandle;
using hv::HypercallRegisters;
using hv::Preemption;
using hv::Vaddr;

// The calling domain's memory: 64 KiB at guest address 0x10000.
class GuestBuffer final : public hv::GuestMemory {
public:
    static constexpr std::uint64_t base = 0x10000;

    bool read(Vaddr address, std::span<std::byte> into) override {
        if (!inside(address, into.size()))
            return false;
        std::memcpy(into.data(), bytes.data() + (address.value - base), into.size());
        return true;
    }
    bool write(Vaddr address, std::span<const std::byte> from) override {
        if (!inside(address, from.size()))
            return false;
        std::memcpy(bytes.data() + (address.value - base), from.data(), from.size());
        return true;
    }

    std::vector<std::byte> bytes = std::vector<std::byte>(0x10000);

private:
    bool inside(Vaddr address, std::size_t size) const {
        return address.value >= base && address.value - base + size <= bytes.size();
    }
};

// Asks a batch to stop after `allowed` more elements.
class CountdownPreemption final : public Preemption {
public:
    bool pending() override { return allowed-- <= 0; }
    int allowed = 1 << 30;
};

// The memory hypercalls wired to the generated dispatcher, as a hypervisor would.
struct MmuHandlers {
    PageTables& tables;
    long mmu_update(MmuCaller& caller, const args::mmu_update& a) { return hv::mm::mmu_update(tables, caller, a); }
    long memory_op(MmuCaller& caller, const args::memory_op& a) { return hv::mm::memory_op(tables, caller, a); }
    long mmuext_op(MmuCaller& caller, const args::mmuext_op& a) { return hv::mm::mmuext_op(tables, caller, a); }
    long update_va_mapping(MmuCaller& caller, const args::update_va_mapping& a) {
        return hv::mm::update_va_mapping(tables, caller, a);
    }
};

struct MmuOpsFixture : MmFixture {
    MmuOpsFixture() { REQUIRE(frames.add_domain(dom0)); }

    template <class T>
    GuestHandle<T> place(std::uint64_t offset, std::initializer_list<T> values) {
        if (values.size() != 0)
            std::memcpy(memory.bytes.data() + offset, std::data(values), values.size() * sizeof(T));
        return GuestHandle<T>{GuestBuffer::base + offset};
    }
    std::uint32_t done_count() {
        std::uint32_t value;
        std::memcpy(&value, memory.bytes.data() + done_offset, sizeof(value));
        return value;
    }
    GuestHandle<std::uint32_t> done_handle() { return GuestHandle<std::uint32_t>{GuestBuffer::base + done_offset}; }
    static abi::mmu_update write_entry(Mfn table, unsigned index, std::uint64_t value,
                                       std::uint64_t command = abi::MMU_NORMAL_PT_UPDATE) {
        return abi::mmu_update{(table.value << 12) + index * 8 + command, value};
    }
    long update(std::initializer_list<abi::mmu_update> requests, std::uint32_t foreigndom = abi::DOMID_SELF) {
        const auto list = place<abi::mmu_update>(0, requests);
        return mmu_update(tables, caller, args::mmu_update{list, static_cast<std::uint32_t>(requests.size()),
                                                            done_handle(), foreigndom});
    }
    long extended(std::initializer_list<abi::mmuext_op> ops, std::uint32_t foreigndom = abi::DOMID_SELF) {
        const auto list = place<abi::mmuext_op>(0, ops);
        return mmuext_op(tables, caller,
                         args::mmuext_op{list, static_cast<std::uint32_t>(ops.size()), done_handle(), foreigndom});
    }
    static abi::mmuext_op op(unsigned command, std::uint64_t arg1 = 0, std::uint64_t arg2 = 0) {
        abi::mmuext_op result{};
        result.cmd = command;
        result.arg1.mfn = arg1;
        result.arg2.src_mfn = arg2;
        return result;
    }

    static constexpr std::uint64_t done_offset = 0x8000;
    DomainMemory dom0{DomId{0}, 100, true};
    GuestBuffer memory;
    CountdownPreemption preemption;
    Continuation continuation;
    MmuCaller caller{dom1, vcpus[0], memory, preemption, continuation};
};

}  // namespace mm_test
