// SPDX-License-Identifier: BSD-2-Clause
// What GCC-compiled freestanding C++ still expects from a runtime. There is no
// libc: the compiler may emit calls to the mem* functions for copies and
// zeroing (and strlen for string_views of C strings), and the C++ ABI needs the few symbols below.
#include <cstddef>
#include <cstdint>

#include "cpu.hpp"

extern "C" {

// rep movsb/stosb rather than C loops: GCC can turn a byte loop inside memset
// back into a call to memset, which would recurse.
// Whole quadwords where the sizes allow: under TCG each repetition costs the same, so memory is
// copied eight times faster than byte by byte.
void* memcpy(void* dest, const void* src, std::size_t n) {
    void* ret = dest;
    if (((reinterpret_cast<std::uintptr_t>(dest) | reinterpret_cast<std::uintptr_t>(src) | n) & 7) == 0) {
        n /= 8;
        asm volatile("rep movsq" : "+D"(dest), "+S"(src), "+c"(n) : : "memory");
    } else {
        asm volatile("rep movsb" : "+D"(dest), "+S"(src), "+c"(n) : : "memory");
    }
    return ret;
}

// Whole 64-byte blocks (pages above all: every frame a domain gets is cleared first) by a loop of
// eight quadword stores rather than rep stosq: QEMU's TCG runs one repetition of a rep string
// instruction per trip through its translated code, the loop eight stores per trip.
void* memset(void* dest, int value, std::size_t n) {
    void* ret = dest;
    const std::uint64_t pattern = 0x0101'0101'0101'0101ull * static_cast<std::uint8_t>(value);
    if (((reinterpret_cast<std::uintptr_t>(dest) & 7) | (n & 63)) == 0 && n != 0) {
        n /= 64;
        asm volatile(
            "1:\n\t"
            "movq %2, 0(%0)\n\t"
            "movq %2, 8(%0)\n\t"
            "movq %2, 16(%0)\n\t"
            "movq %2, 24(%0)\n\t"
            "movq %2, 32(%0)\n\t"
            "movq %2, 40(%0)\n\t"
            "movq %2, 48(%0)\n\t"
            "movq %2, 56(%0)\n\t"
            "addq $64, %0\n\t"
            "decq %1\n\t"
            "jnz 1b"
            : "+r"(dest), "+r"(n)
            : "r"(pattern)
            : "memory", "cc");
    } else if (((reinterpret_cast<std::uintptr_t>(dest) | n) & 7) == 0) {
        n /= 8;
        asm volatile("rep stosq" : "+D"(dest), "+c"(n) : "a"(pattern) : "memory");
    } else {
        asm volatile("rep stosb" : "+D"(dest), "+c"(n) : "a"(value) : "memory");
    }
    return ret;
}

void* memmove(void* dest, const void* src, std::size_t n) {
    auto* d = static_cast<unsigned char*>(dest);
    const auto* s = static_cast<const unsigned char*>(src);
    if (d <= s || d >= s + n) {
        return memcpy(dest, src, n);
    }
    // Overlap with dest above src: copy backwards, from the last byte down.
    d += n - 1;
    s += n - 1;
    asm volatile("std; rep movsb; cld" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return dest;
}

int memcmp(const void* lhs, const void* rhs, std::size_t n) {
    const auto* a = static_cast<const unsigned char*>(lhs);
    const auto* b = static_cast<const unsigned char*>(rhs);
    for (std::size_t i = 0; i < n; ++i) {
        if (a[i] != b[i]) {
            return a[i] < b[i] ? -1 : 1;
        }
    }
    return 0;
}

std::size_t strlen(const char* text) {
    std::size_t length = 0;
    while (text[length] != '\0') {
        ++length;
    }
    return length;
}

// A pure virtual function was called through a half-built or half-destroyed object.
[[noreturn]] void __cxa_pure_virtual() { hypervisor::cpu::halt_forever(); }

// Destructors of globals would run at exit; the hypervisor never exits, so
// registering them is a no-op.
int __cxa_atexit(void (*)(void*), void*, void*) { return 0; }

// Identifies this image to __cxa_atexit; hidden so -fpie code reaches it directly.
__attribute__((visibility("hidden"))) void* __dso_handle = &__dso_handle;

}  // extern "C"

// Referenced by deleting destructors of polymorphic classes (GCC asks for the
// unsized form beside the sized one); there is no heap yet, so reaching it is a bug.
void operator delete(void*, std::size_t) noexcept { hypervisor::cpu::halt_forever(); }
void operator delete(void*) noexcept { hypervisor::cpu::halt_forever(); }
