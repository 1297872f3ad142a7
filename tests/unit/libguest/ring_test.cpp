// guest/ring.hpp: the request/response protocol, notification rules, final checks and a hostile
// other end, over a ring in ordinary memory with both ends driven by the test.
#include <guest/ring.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>

namespace {
using namespace pvkit::guest;

struct TestRequest {
    std::uint64_t id;
    std::uint32_t value;
};
struct TestResponse {
    std::uint64_t id;
    std::int16_t status;
};
using Ring = SharedRing<TestRequest, TestResponse>;
static_assert(sizeof(Ring) <= 4096 && Ring::size == 128);

// Fences that let a test run the other end at the full fence of a push or a final check: the
// moment the interleavings that could lose a wake-up happen.
struct HookFences {
    static inline std::function<void()> at_full_fence;
    static void write() {}
    static void read() {}
    static void full() {
        if (auto hook = std::move(at_full_fence)) {
            at_full_fence = nullptr;
            hook();
        }
    }
};
using Front = FrontRing<Ring, HookFences>;
using Back = BackRing<Ring, HookFences>;

// A page-sized ring whose indexes all stand at `start`, as after a long life.
std::unique_ptr<Ring> ring_at(RingIndex start) {
    auto ring = std::make_unique<Ring>();
    std::memset(ring.get(), 0, sizeof(Ring));
    ring->init();
    ring->req_prod = ring->rsp_prod = start;
    ring->req_event = ring->rsp_event = start + 1;
    return ring;
}
}  // namespace

TEST_CASE("libguest: a request travels to the back end and its response comes back", "[unit][ring]") {
    auto shared = ring_at(0);
    Front front(*shared);
    Back back(*shared);

    REQUIRE(front.queue_request({7, 42}));
    CHECK(back.unconsumed_requests() == 0);  // queued, not pushed
    CHECK(front.push_requests_and_check_notify());  // req_event 1 is in (0, 1]
    CHECK(shared->req_prod == 1);

    TestRequest request{};
    REQUIRE(back.take_request(request) == RingTake::taken);
    CHECK(request.id == 7);
    CHECK(request.value == 42);
    CHECK(back.take_request(request) == RingTake::empty);
    REQUIRE(back.queue_response({7, -5}));
    CHECK(back.push_responses_and_check_notify());

    TestResponse response{};
    REQUIRE(front.unconsumed_responses() == 1);
    REQUIRE(front.take_response(response) == RingTake::taken);
    CHECK(response.id == 7);
    CHECK(response.status == -5);
    CHECK(front.take_response(response) == RingTake::empty);
    CHECK(front.free_requests() == Ring::size);
}

TEST_CASE("libguest: ring indexes wrap past 2^32 and keep selecting entries modulo the size", "[unit][ring]") {
    const RingIndex start = 0xFFFFFFFFu - 40;
    auto shared = ring_at(start);
    Front front(*shared, start);
    Back back(*shared, start);

    std::uint64_t next_id = 0;
    for (int round = 0; round < 3; ++round) {  // three ring-fulls: the indexes cross 2^32 in the first
        while (!front.full())
            REQUIRE(front.queue_request({next_id++, 0}));
        CHECK(front.free_requests() == 0);
        front.push_requests();
        CHECK(back.unconsumed_requests() == Ring::size);
        CHECK_FALSE(back.request_producer_overflow());
        for (RingIndex i = 0; i < Ring::size; ++i) {
            TestRequest request{};
            REQUIRE(back.take_request(request) == RingTake::taken);
            CHECK(request.id == next_id - Ring::size + i);
            REQUIRE(back.queue_response({request.id, 0}));
        }
        back.push_responses();
        CHECK(front.unconsumed_responses() == Ring::size);
        for (RingIndex i = 0; i < Ring::size; ++i) {
            TestResponse response{};
            REQUIRE(front.take_response(response) == RingTake::taken);
            CHECK(response.id == next_id - Ring::size + i);
        }
    }
    CHECK(front.requests_produced() == static_cast<RingIndex>(start + 3 * Ring::size));
    CHECK(front.requests_produced() < start);  // wrapped
    CHECK(back.requests_consumed() == front.requests_produced());
    CHECK(shared->rsp_prod == front.responses_consumed());
}

TEST_CASE("libguest: a push notifies exactly when the event index lies in the published interval", "[unit][ring]") {
    struct Case {
        RingIndex old_prod, new_prod, event;
        bool notify;
    };
    const Case cases[] = {
        {0, 1, 1, true},                          // the consumer asked for entry 1
        {0, 3, 2, true},                          // inside (0, 3]
        {0, 3, 3, true},                          // the last one published
        {0, 3, 4, false},                         // asked for one not yet published
        {5, 8, 5, false},                         // already covered by an earlier push
        {5, 8, 1, false},                         // a stale event from long ago
        {0xFFFFFFFEu, 2, 0xFFFFFFFFu, true},      // the interval wraps
        {0xFFFFFFFEu, 2, 0, true},
        {0xFFFFFFFEu, 2, 3, false},
        {0xFFFFFFFEu, 2, 0xFFFFFFFEu, false},
        {4, 4, 4, false},                         // nothing published
    };
    for (const Case& c : cases) {
        CAPTURE(c.old_prod, c.new_prod, c.event);
        auto shared = ring_at(c.old_prod);
        shared->req_event = c.event;
        shared->rsp_event = c.event;
        Front front(*shared, c.old_prod);
        Back back(*shared, c.old_prod);
        for (RingIndex i = c.old_prod; i != c.new_prod; ++i)
            REQUIRE(front.queue_request({i, 0}));
        CHECK(front.push_requests_and_check_notify() == c.notify);
        CHECK(shared->req_prod == c.new_prod);
        TestRequest request{};
        while (back.take_request(request) == RingTake::taken)
            REQUIRE(back.queue_response({request.id, 0}));
        CHECK(back.push_responses_and_check_notify() == c.notify);
        CHECK(shared->rsp_prod == c.new_prod);
    }
}

TEST_CASE("libguest: final checks lose no wake-up whichever end runs first", "[unit][ring]") {
    auto shared = ring_at(10);
    Front front(*shared, 10);
    Back back(*shared, 10);
    REQUIRE(front.queue_request({1, 0}));
    front.push_requests();
    TestRequest request{};
    REQUIRE(back.take_request(request) == RingTake::taken);
    shared->rsp_event = 0;  // the front end has not asked for responses yet

    SECTION("the back end answers while the front end is between its event write and its second look") {
        REQUIRE(front.unconsumed_responses() == 0);
        bool notified = false;
        HookFences::at_full_fence = [&] {
            CHECK(shared->rsp_event == 11);  // written before the fence
            REQUIRE(back.queue_response({1, 0}));
            notified = back.push_responses_and_check_notify();
        };
        CHECK(front.final_check_for_responses());  // the second look sees it...
        CHECK(notified);                            // ...and the producer saw the new event too
    }
    SECTION("the back end answers before the event write: it does not notify, the final check finds the work") {
        REQUIRE(back.queue_response({1, 0}));
        CHECK_FALSE(back.push_responses_and_check_notify());
        CHECK(front.final_check_for_responses());
        CHECK(shared->rsp_event == 0);  // work found at the first look: no event written
    }
    SECTION("the front end goes to sleep first: the next response notifies it") {
        CHECK_FALSE(front.final_check_for_responses());
        CHECK(shared->rsp_event == 11);
        REQUIRE(back.queue_response({1, 0}));
        CHECK(back.push_responses_and_check_notify());
    }
    SECTION("the back end's final check for requests, with the front end pushing at its fence") {
        REQUIRE(back.queue_response({1, 0}));
        back.push_responses();
        shared->req_event = 0;
        bool notified = false;
        HookFences::at_full_fence = [&] {
            CHECK(shared->req_event == 12);
            REQUIRE(front.queue_request({2, 0}));
            notified = front.push_requests_and_check_notify();
        };
        CHECK(back.final_check_for_requests());
        CHECK(notified);
        CHECK_FALSE(HookFences::at_full_fence);
    }
    HookFences::at_full_fence = nullptr;
}

TEST_CASE("libguest: a front end that claims more than a ring of requests is refused", "[unit][ring][hostile]") {
    auto shared = ring_at(100);
    Back back(*shared, 100);
    const RingIndex claims[] = {100 + Ring::size + 1, 100 + 0x80000000u, 99 /* behind: 2^32 - 1 requests */};
    for (RingIndex claim : claims) {
        CAPTURE(claim);
        shared->req_prod = claim;
        CHECK(back.request_producer_overflow());
        CHECK(back.unconsumed_requests() <= Ring::size);
        TestRequest request{0xAA, 0xBB};
        CHECK(back.take_request(request) == RingTake::producer_overflow);
        CHECK(back.requests_consumed() == 100);  // nothing consumed
        CHECK(request.id == 0xAA);               // nothing copied
    }
    // Exactly a ring's worth is legitimate, and is served without leaving the ring.
    shared->req_prod = 100 + Ring::size;
    CHECK_FALSE(back.request_producer_overflow());
    TestRequest request{};
    for (RingIndex i = 0; i < Ring::size; ++i)
        REQUIRE(back.take_request(request) == RingTake::taken);
    CHECK(back.take_request(request) == RingTake::empty);
    // With the ring full of unanswered requests, the front end moving req_prod further is hostile.
    shared->req_prod = 100 + Ring::size + 1;
    CHECK(back.unconsumed_requests() == 0);
    CHECK(back.take_request(request) == RingTake::producer_overflow);
    CHECK(back.requests_consumed() == 100 + Ring::size);
}

TEST_CASE("libguest: a back end that answers requests never made is refused", "[unit][ring][hostile]") {
    auto shared = ring_at(0);
    Front front(*shared);
    REQUIRE(front.queue_request({1, 0}));
    REQUIRE(front.queue_request({2, 0}));
    front.push_requests();
    shared->rsp_prod = 3;  // three responses to two requests
    CHECK(front.response_producer_overflow());
    CHECK(front.unconsumed_responses() == 2);
    TestResponse response{9, 9};
    CHECK(front.take_response(response) == RingTake::producer_overflow);
    CHECK(front.responses_consumed() == 0);
    CHECK(response.id == 9);
    CHECK(front.free_requests() == Ring::size - 2);
}

TEST_CASE("libguest: neither end writes past what the protocol allows", "[unit][ring]") {
    auto shared = ring_at(0);
    Front front(*shared);
    Back back(*shared);
    CHECK_FALSE(back.queue_response({1, 0}));  // no request taken: no slot to answer in
    CHECK(back.responses_produced() == 0);
    for (RingIndex i = 0; i < Ring::size; ++i)
        REQUIRE(front.queue_request({i, 0}));
    CHECK(front.full());
    const Ring before = *shared;
    CHECK_FALSE(front.queue_request({999, 0}));
    CHECK(std::memcmp(&before, shared.get(), sizeof(Ring)) == 0);
    CHECK(front.requests_produced() == Ring::size);
}
