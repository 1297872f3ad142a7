// guest/console.hpp: the guest's end of the PV console ring over a page the test plays the back
// end of (it moves out_cons and in_prod as xenconsoled would).
#include <guest/console.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

namespace {
using namespace pvkit::guest;
namespace abi = pvkit::abi;

// The back end: takes up to `most` bytes of output.
std::string drain(abi::xencons_interface& page, std::uint32_t most) {
    std::string taken;
    while (page.out_cons != page.out_prod && taken.size() < most)
        taken += page.out[page.out_cons++ % sizeof page.out];
    return taken;
}

void type(abi::xencons_interface& page, const std::string& text) {
    for (char c : text)
        page.in[page.in_prod++ % sizeof page.in] = c;
}
}  // namespace

TEST_CASE("libguest: console output fills the ring, stops when full, goes on once drained", "[libguest][console]") {
    abi::xencons_interface page{};
    ConsoleRing ring(page);
    std::string text;
    for (int i = 0; i < 3000; ++i)
        text += char('a' + i % 26);

    CHECK(ring.out_space() == 2048);
    CHECK(ring.write(text) == 2048);  // what fits: nothing dropped, the rest is the caller's
    CHECK(ring.out_space() == 0);
    CHECK(ring.write(std::string_view(text).substr(2048)) == 0);
    CHECK_FALSE(ring.drained());

    CHECK(drain(page, 1000) == text.substr(0, 1000));
    CHECK(ring.write(std::string_view(text).substr(2048)) == 952);
    CHECK(drain(page, 5000) == text.substr(1000));
    CHECK(ring.drained());
    CHECK_FALSE(ring.broken());
}

TEST_CASE("libguest: console indexes wrap around 2^32", "[libguest][console]") {
    abi::xencons_interface page{};
    page.out_prod = page.out_cons = 0xFFFFFFF0u;
    page.in_prod = page.in_cons = 0xFFFFFFFEu;
    ConsoleRing ring(page);
    CHECK(ring.write(std::string(40, 'x')) == 40);
    CHECK(page.out_prod == 0x18u);
    CHECK(drain(page, 100) == std::string(40, 'x'));
    type(page, "hello");
    char buffer[8] = {};
    CHECK(ring.in_available() == 5);
    CHECK(ring.read({buffer, 3}) == 3);
    CHECK(std::string(buffer, 3) == "hel");
    CHECK(ring.read(buffer) == 2);
    CHECK(std::string(buffer, 2) == "lo");
    CHECK(page.in_cons == 3u);
    CHECK(ring.read(buffer) == 0);
}

TEST_CASE("libguest: a back end claiming more than the ring holds breaks it for good", "[libguest][console][hostile]") {
    abi::xencons_interface page{};
    ConsoleRing ring(page);
    CHECK(ring.write(std::string_view("abc")) == 3);
    page.out_cons = 10;  // consumed more than was produced
    CHECK(ring.write(std::string_view("def")) == 0);
    CHECK(ring.broken());
    page.out_cons = 3;  // repaired: still broken, nothing moves
    CHECK(ring.write(std::string_view("def")) == 0);
    CHECK(page.out_prod == 3);

    abi::xencons_interface input_page{};
    ConsoleRing reader(input_page);
    input_page.in_prod = 1025;
    char buffer[4];
    CHECK(reader.read(buffer) == 0);
    CHECK(reader.broken());
    CHECK(input_page.in_cons == 0);
}
