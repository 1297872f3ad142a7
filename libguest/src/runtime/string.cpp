// The four memory functions GCC may call even in freestanding code (struct copies, zeroing), and
// strlen and memchr, which std::string_view's construction from a C string and its find() call,
// for images only. Built with -fno-tree-loop-distribute-patterns so no loop here becomes a call to
// itself.
#include <cstddef>

extern "C" {

void* memcpy(void* dest, const void* src, std::size_t n) {
    void* start = dest;
    asm volatile("rep movsb" : "+D"(dest), "+S"(src), "+c"(n) : : "memory");
    return start;
}

void* memset(void* dest, int value, std::size_t n) {
    void* start = dest;
    asm volatile("rep stosb" : "+D"(dest), "+c"(n) : "a"(value) : "memory");
    return start;
}

void* memmove(void* dest, const void* src, std::size_t n) {
    auto* to = static_cast<unsigned char*>(dest);
    const auto* from = static_cast<const unsigned char*>(src);
    if (to <= from || to >= from + n)
        return memcpy(dest, src, n);
    while (n-- > 0)  // dest overlaps the end of src: last byte first
        to[n] = from[n];
    return dest;
}

int memcmp(const void* lhs, const void* rhs, std::size_t n) {
    const auto* a = static_cast<const unsigned char*>(lhs);
    const auto* b = static_cast<const unsigned char*>(rhs);
    for (std::size_t i = 0; i < n; ++i)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return 0;
}

std::size_t strlen(const char* text) {
    std::size_t length = 0;
    while (text[length] != '\0')
        ++length;
    return length;
}

void* memchr(const void* memory, int value, std::size_t n) {
    const auto* bytes = static_cast<const unsigned char*>(memory);
    for (std::size_t i = 0; i < n; ++i)
        if (bytes[i] == static_cast<unsigned char>(value))
            return const_cast<unsigned char*>(bytes + i);
    return nullptr;
}

}  // extern "C"
