// The benchmarks' machine: guest RAM as an array of page-aligned frames, a caller's memory as a
// flat buffer, and no preemption. Each fake does the least it can, so that what is measured is
// the component.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include <hv/mmu_ops.hpp>

namespace bench {

using namespace hv;
using namespace hv::mm;

// Frames are page-aligned, as machine frames are, so that copies between them compare with a
// memcpy between two aligned pages.
struct alignas(page_size) Frame {
    std::array<std::byte, page_size> bytes;
};

class ArrayPlatform final : public MemoryPlatform {
public:
    explicit ArrayPlatform(std::size_t frame_count) : memory(frame_count) {}

    std::byte* map(Mfn frame) override { return memory[frame.value].bytes.data(); }
    std::uint64_t hypervisor_l4_entry(const DomainMemory&, unsigned slot) override { return std::uint64_t{slot} << 12; }
    void flush_tlb(const DomainMemory&) override { ++flushes; }
    void flush_caches() override {}

    std::vector<Frame> memory;
    std::uint64_t flushes = 0;
};

class NeverPreempt final : public Preemption {
public:
    bool pending() override { return false; }
};

// The calling domain's memory: 64 KiB at guest address `base`, every access in range.
class FlatGuestMemory final : public GuestMemory {
public:
    static constexpr std::uint64_t base = 0x100000;
    bool read(Vaddr address, std::span<std::byte> into) override {
        std::memcpy(into.data(), bytes.data() + (address.value - base), into.size());
        return true;
    }
    bool write(Vaddr address, std::span<const std::byte> from) override {
        std::memcpy(bytes.data() + (address.value - base), from.data(), from.size());
        return true;
    }
    std::vector<std::byte> bytes = std::vector<std::byte>(64 * 1024);
};

}  // namespace bench
