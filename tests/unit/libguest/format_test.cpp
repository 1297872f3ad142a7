// pvkit/format.h: pvk_snprintf against the host's snprintf, truncation, the sink, and what C
// leaves undefined that pvk_snprintf defines (unknown conversions).
#include <pvkit/format.h>

#include <catch2/catch.hpp>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"

namespace {
// Formats with both and checks text and return value; a 300-byte buffer holds every case here.
template <class... Args>
void check_same_as_snprintf(const std::string& format, Args... arguments) {
    char ours[300];
    char host[300];
    std::memset(ours, 0x55, sizeof ours);
    const int our_count = pvk_snprintf(ours, sizeof ours, format.c_str(), arguments...);
    const int host_count = std::snprintf(host, sizeof host, format.c_str(), arguments...);
    INFO("format \"" << format << "\"");
    REQUIRE(std::string(ours) == std::string(host));
    REQUIRE(our_count == host_count);
}

// One integer conversion with every flag, width and precision combination below.
template <class T>
void check_integer_grid(const std::string& conversion, const std::vector<T>& values) {
    for (const char* flags : {"", "-", "0", "-0", "00"})
        for (const char* width : {"", "1", "5", "24", "*"})
            for (const char* precision : {"", ".", ".0", ".3", ".22", ".*"})
                for (T value : values) {
                    const std::string format = std::string("<%") + flags + width + precision + conversion + ">";
                    const bool star_width = std::string(width) == "*", star_precision = std::string(precision) == ".*";
                    if (star_width && star_precision) {
                        check_same_as_snprintf(format, -9, 4, value);
                        check_same_as_snprintf(format, 9, -2, value);
                    } else if (star_width) {
                        check_same_as_snprintf(format, 11, value);
                        check_same_as_snprintf(format, -11, value);
                    } else if (star_precision) {
                        check_same_as_snprintf(format, 0, value);
                        check_same_as_snprintf(format, 7, value);
                    } else {
                        check_same_as_snprintf(format, value);
                    }
                }
}
}  // namespace

TEST_CASE("libguest: pvk_snprintf formats integers as the host's snprintf does", "[unit][format]") {
    const std::vector<int> ints{0, 1, -1, 7, 42, -42, 123456, INT_MAX, INT_MIN};
    const std::vector<unsigned> unsigneds{0, 1, 9, 10, 255, 0xdeadbeef, UINT_MAX};
    const std::vector<long> longs{0, -1, LONG_MAX, LONG_MIN, 1234567890123L};
    const std::vector<unsigned long> unsigned_longs{0, 1, ULONG_MAX, 0xffffffff80000000ul};
    const std::vector<long long> long_longs{0, LLONG_MIN, LLONG_MAX, -1000000000000LL};
    const std::vector<unsigned long long> unsigned_long_longs{0, ULLONG_MAX, 0x0123456789abcdefull};
    const std::vector<std::size_t> sizes{0, 4096, SIZE_MAX};
    const std::vector<std::ptrdiff_t> signed_sizes{0, -4096, PTRDIFF_MAX, PTRDIFF_MIN};

    check_integer_grid("d", ints);
    check_integer_grid("i", ints);
    for (const char* conversion : {"u", "x", "X"})
        check_integer_grid(conversion, unsigneds);
    check_integer_grid("ld", longs);
    check_integer_grid("li", longs);
    for (const char* conversion : {"lu", "lx", "lX"})
        check_integer_grid(conversion, unsigned_longs);
    check_integer_grid("lld", long_longs);
    for (const char* conversion : {"llu", "llx", "llX"})
        check_integer_grid(conversion, unsigned_long_longs);
    for (const char* conversion : {"zu", "zx", "zX"})
        check_integer_grid(conversion, sizes);
    check_integer_grid("zd", signed_sizes);
}

TEST_CASE("libguest: pvk_snprintf formats strings, characters, pointers and %% as the host does", "[unit][format]") {
    for (const char* flags : {"", "-"})
        for (const char* width : {"", "1", "3", "12", "*"})
            for (const char* precision : {"", ".", ".0", ".2", ".5", ".40", ".*"})
                for (const char* text : {"", "a", "hello", "a longer string of text"}) {
                    const std::string format = std::string("[%") + flags + width + precision + "s]";
                    const bool star_width = std::string(width) == "*", star_precision = std::string(precision) == ".*";
                    if (star_width && star_precision)
                        check_same_as_snprintf(format, -8, 3, text);
                    else if (star_width)
                        check_same_as_snprintf(format, 8, text);
                    else if (star_precision)
                        check_same_as_snprintf(format, 2, text);
                    else
                        check_same_as_snprintf(format, text);
                }
    for (const char* format : {"%c", "%5c", "%-5c", "%1c", "x%cy"})
        for (int c : {'a', 'Z', ' ', '~'})
            check_same_as_snprintf(format, c);
    int object = 0;
    for (const char* format : {"%p", "%20p", "%-20p|", "%3p"}) {
        check_same_as_snprintf(format, static_cast<void*>(&object));
        check_same_as_snprintf(format, reinterpret_cast<void*>(std::uintptr_t{0xffffffff80001000}));
        check_same_as_snprintf(format, static_cast<void*>(nullptr));
    }
    check_same_as_snprintf("100%% done, %d%%", 50);
    check_same_as_snprintf("%s", static_cast<const char*>(nullptr));
    check_same_as_snprintf("no conversions at all");
    check_same_as_snprintf("");
    check_same_as_snprintf("%s=%d (%x) %c%s %5.2s|%-6u|%lld", "key", -17, 255u, 'Q', "!", "abc", 3u, -5LL);
}

TEST_CASE("libguest: pvk_snprintf never writes past the buffer and returns the full length", "[unit][format]") {
    const char* format = "value %d and %s";
    const std::string full = "value -123 and some text";
    for (std::size_t size = 0; size <= full.size() + 2; ++size) {
        CAPTURE(size);
        char buffer[64];
        std::memset(buffer, '#', sizeof buffer);
        const int count = pvk_snprintf(buffer, size, format, -123, "some text");
        CHECK(count == static_cast<int>(full.size()));
        if (size == 0) {
            CHECK(buffer[0] == '#');  // nothing written, not even a NUL
        } else {
            const std::size_t kept = size - 1 < full.size() ? size - 1 : full.size();
            CHECK(std::string(buffer) == full.substr(0, kept));
        }
        for (std::size_t i = size; i < sizeof buffer; ++i)
            REQUIRE(buffer[i] == '#');
    }
    CHECK(pvk_snprintf(nullptr, 0, "%d", 12345) == 5);
}

TEST_CASE("libguest: pvk_format gives a sink the same text in order, padding included", "[unit][format]") {
    std::string collected;
    std::size_t pieces = 0;
    auto sink = [](void* context, const char* text, std::size_t length) {
        static_cast<std::string*>(context)->append(text, length);
    };
    const int count = pvk_format(sink, &collected, "%-70s|%080d|%s", "left", -9, "end");
    char host[256];
    const int host_count = std::snprintf(host, sizeof host, "%-70s|%080d|%s", "left", -9, "end");
    CHECK(collected == host);
    CHECK(count == host_count);

    auto counting_sink = [](void* context, const char*, std::size_t length) {
        REQUIRE(length > 0);  // no empty pieces
        ++*static_cast<std::size_t*>(context);
    };
    pvk_format(counting_sink, &pieces, "%s", "");
    CHECK(pieces == 0);
}

// C leaves these undefined; the compiler rightly warns about them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat"
#pragma GCC diagnostic ignored "-Wformat-extra-args"
TEST_CASE("libguest: pvk_snprintf prints an unknown or cut-off conversion as written", "[unit][format]") {
    char buffer[64];
    CHECK(pvk_snprintf(buffer, sizeof buffer, "a%qb %d", 5) == 6);
    CHECK(std::string(buffer) == "a%qb 5");
    CHECK(pvk_snprintf(buffer, sizeof buffer, "%-08.3lq|") == 9);
    CHECK(std::string(buffer) == "%-08.3lq|");
    CHECK(pvk_snprintf(buffer, sizeof buffer, "end %") == 5);
    CHECK(std::string(buffer) == "end %");
    CHECK(pvk_snprintf(buffer, sizeof buffer, "end %5l") == 7);
    CHECK(std::string(buffer) == "end %5l");
}
#pragma GCC diagnostic pop
