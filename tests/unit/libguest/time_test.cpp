// guest/time.hpp: pvclock scaling and versioned reads, the wall clock, and the timer queue.
#include <guest/time.hpp>

#include <catch2/catch.hpp>

#include <vector>

namespace {
using namespace pvkit::guest;
namespace abi = pvkit::abi;

// The scale factor Xen computes for a TSC of `hz` (mul * 2^shift / 2^32 = 1e9 / hz), done in
// floating point here so that the integer code has something independent to agree with.
double expected_ns(std::uint64_t ticks, std::uint32_t mul, std::int8_t shift) {
    const double scaled = shift >= 0 ? double(ticks) * double(1u << shift) : double(ticks) / double(1u << -shift);
    return scaled * double(mul) / 4294967296.0;
}
}  // namespace

TEST_CASE("libguest: pvclock scaling matches the multiplier and shift", "[libguest][time]") {
    // A 2 GHz TSC: 0.5 ns a tick, as mul 2^31 and shift 0.
    CHECK(pvclock_scale(2000000000ull, 0x80000000u, 0) == 1000000000ull);
    // A 500 MHz TSC: 2 ns a tick, as mul 2^31 with shift 2.
    CHECK(pvclock_scale(1000, 0x80000000u, 2) == 2000);
    // A negative shift divides first (low bits are lost before the multiplication, as Xen does).
    CHECK(pvclock_scale(7, 0xFFFFFFFFu, -1) == 2);
    for (std::uint64_t ticks : {1ull, 999ull, 123456789ull, 1ull << 40, (1ull << 62) + 12345})
        for (std::uint32_t mul : {1u, 0x9abcdef0u, 0xffffffffu})
            for (std::int8_t shift : {std::int8_t{-3}, std::int8_t{0}, std::int8_t{1}}) {
                const double want = expected_ns(ticks, mul, shift);
                const double got = double(pvclock_scale(ticks, mul, shift));
                CHECK(got <= want + 1e-3 * want + 2);
                CHECK(got >= want - 1e-3 * want - 2);
            }
    // 2^63 ticks at mul 2^32 - 1 needs 95 bits in the middle: no overflow.
    CHECK(pvclock_scale(1ull << 63, 0xFFFFFFFFu, 0) == ((1ull << 63) / 4294967296ull) * 0xFFFFFFFFull);
}

TEST_CASE("libguest: system time advances from the record's timestamp and never before it", "[libguest][time]") {
    abi::vcpu_time_info info{};
    info.tsc_timestamp = 1000;
    info.system_time = 5000000;
    info.tsc_to_system_mul = 0x80000000u;  // 0.5 ns a tick
    info.tsc_shift = 0;
    CHECK(system_time_at(info, 1000) == 5000000);
    CHECK(system_time_at(info, 3000) == 5001000);
    CHECK(system_time_at(info, 10) == 5000000);  // a TSC behind the timestamp
}

TEST_CASE("libguest: a time record with an even version is copied whole", "[libguest][time]") {
    // (An odd version, an update in progress, would make it spin: a single-threaded test cannot
    // finish the update, so only the settled case is checked.)
    abi::vcpu_time_info shared{};
    shared.version = 4;
    shared.system_time = 77;
    shared.tsc_to_system_mul = 3;
    const abi::vcpu_time_info copy = read_time_info(shared);
    CHECK(copy.version == 4);
    CHECK(copy.system_time == 77);
    CHECK(copy.tsc_to_system_mul == 3);
}

TEST_CASE("libguest: the wall clock adds system time to the boot wall time", "[libguest][time]") {
    abi::shared_info shared{};
    shared.wc_version = 2;
    shared.wc_sec = 1700000000u;
    shared.wc_sec_hi = 1;
    shared.wc_nsec = 900000000u;
    const WallClock now = wall_clock_at(shared, 2300000000ull);  // 2.3 s after boot
    CHECK(now.seconds == (1ull << 32) + 1700000000ull + 3);
    CHECK(now.nanoseconds == 200000000u);
}

namespace {
std::vector<int> ran;
void record(Timer*, void* context) { ran.push_back(*static_cast<int*>(context)); }

Timer* rearm_target = nullptr;
TimerQueue* rearm_queue = nullptr;
void rearm_once(Timer* timer, void* context) {
    record(timer, context);
    if (rearm_target == timer) {
        rearm_target = nullptr;
        rearm_queue->arm(*timer, timer->deadline_ns + 100, rearm_once, context);
    }
}
}  // namespace

TEST_CASE("libguest: timers run in deadline order, each once, and may re-arm", "[libguest][time]") {
    ran.clear();
    TimerQueue queue;
    Timer a, b, c;
    int ids[] = {1, 2, 3};
    queue.arm(a, 300, record, &ids[0]);
    queue.arm(b, 100, record, &ids[1]);
    queue.arm(c, 300, record, &ids[2]);  // same deadline as a: armed later, runs later
    CHECK(queue.next_deadline() == 100);
    CHECK(queue.run_expired(99) == 0);
    CHECK(queue.run_expired(300) == 3);
    CHECK(ran == std::vector<int>{2, 1, 3});
    CHECK(queue.next_deadline() == 0);
    CHECK_FALSE(a.armed);

    ran.clear();
    queue.arm(a, 50, record, &ids[0]);
    queue.arm(a, 500, record, &ids[0]);  // re-arming moves it
    queue.arm(b, 200, record, &ids[1]);
    CHECK(queue.cancel(b));
    CHECK_FALSE(queue.cancel(b));
    CHECK(queue.run_expired(400) == 0);
    rearm_target = &a;
    rearm_queue = &queue;
    a.callback = rearm_once;
    CHECK(queue.run_expired(500) == 1);
    CHECK(queue.next_deadline() == 600);
    CHECK(queue.run_expired(1000) == 1);
    CHECK(ran == std::vector<int>{1, 1});
}
