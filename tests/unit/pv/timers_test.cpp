#include <catch2/catch.hpp>

#include <hv/pv_timers.hpp>

namespace pv_test {
namespace {

using namespace hv::pv;

TEST_CASE("a vCPU starts with a 10 ms periodic timer that does not make up for missed periods", "[pv][timers]") {
    VcpuTimers timers;
    CHECK(timers.next_deadline() == 10'000'000u);
    CHECK_FALSE(timers.expire(9'999'999));
    CHECK(timers.expire(10'000'000));
    CHECK(timers.next_deadline() == 20'000'000u);
    CHECK(timers.expire(55'000'000));  // three periods late: one event
    CHECK(timers.next_deadline() == 60'000'000u);
    timers.period = 0;  // VCPUOP_stop_periodic_timer
    CHECK_FALSE(timers.next_deadline());
    CHECK_FALSE(timers.expire(1'000'000'000));
}

TEST_CASE("set_timer_op arms, replaces and cancels the single-shot timer", "[pv][timers]") {
    VcpuTimers timers;
    timers.period = 0;
    CHECK(set_timer_op(timers, 1'000, {5'000}) == 0);
    CHECK(timers.next_deadline() == 5'000u);
    CHECK(set_timer_op(timers, 1'000, {3'000}) == 0);
    CHECK(timers.next_deadline() == 3'000u);
    CHECK_FALSE(timers.expire(2'999));
    CHECK(timers.expire(3'000));
    CHECK_FALSE(timers.next_deadline());  // single-shot: disarmed once it fired

    CHECK(set_timer_op(timers, 10'000, {500}) == 0);  // already past: fires at the next check
    CHECK(timers.expire(10'000));
    CHECK(set_timer_op(timers, 10'000, {20'000}) == 0);
    CHECK(set_timer_op(timers, 10'000, {0}) == 0);
    CHECK_FALSE(timers.next_deadline());

    // A negative deadline fires at once; one absurdly far away is set 100 ms ahead, as Xen.
    CHECK(set_timer_op(timers, 10'000, {-1}) == 0);
    CHECK(timers.next_deadline() == 10'000u);
    CHECK(set_timer_op(timers, 10'000, {std::int64_t{1} << 60}) == 0);
    CHECK(timers.next_deadline() == 10'000u + 100'000'000u);
}

TEST_CASE("the earliest of the two timers is the next deadline", "[pv][timers]") {
    VcpuTimers timers;
    REQUIRE(set_timer_op(timers, 0, {25'000'000}) == 0);
    CHECK(timers.next_deadline() == 10'000'000u);
    CHECK(timers.expire(10'000'000));
    CHECK(timers.expire(20'000'000));
    CHECK(timers.next_deadline() == 25'000'000u);
    CHECK(timers.expire(25'000'000));
    CHECK(timers.next_deadline() == 30'000'000u);
}

}  // namespace
}  // namespace pv_test
