// The xenstore client's ring work against the real store: watch events between a request and its
// reply, requests bigger than the ring, replies split over the wrap, the event queue's bound.
#include "xenstore_fixture.hpp"

using namespace xenstore_client_test;

TEST_CASE("libguest: xenstore watch events fire and are taken with next_event", "[libguest][xenstore]") {
    Machine machine;
    Guest& guest = machine.connect(1);
    XenstoreClient& xs = guest.client;
    XenstoreClient& dom0 = machine.connect(0, true).client;
    REQUIRE(xs.watch("watched", "mine"));
    char buffer[64];
    // The first firing, at once, with the path as given.
    XsResult<XsWatchEvent> event = xs.next_event(buffer, 0);
    REQUIRE(event);
    CHECK(event->path == "watched");
    CHECK(event->token == "mine");
    CHECK(error_of(xs.next_event(buffer, 0)) == XsErrc::etime);

    REQUIRE(dom0.write("/local/domain/1/watched/below", "x"));
    event = xs.next_event(buffer, guest.channel.now() + 5 * millisecond);
    REQUIRE(event);
    CHECK(event->path == "watched/below");
    CHECK(event->token == "mine");

    REQUIRE(xs.unwatch("watched", "mine"));
    REQUIRE(dom0.write("/local/domain/1/watched", "y"));
    CHECK(error_of(xs.next_event(buffer, guest.channel.now() + 5 * millisecond)) == XsErrc::etime);
    CHECK_FALSE(guest.channel.runaway);
}

TEST_CASE("libguest: xenstore an event arriving between a request and its reply is queued, not taken as the reply",
          "[libguest][xenstore]") {
    Machine machine;
    Guest& guest = machine.connect(1);
    XenstoreClient& xs = guest.client;
    REQUIRE(xs.write("value", "v"));
    REQUIRE(xs.watch("watched", "token"));
    REQUIRE(xs.discard_events({}) == 1);
    // The toolstack changes the watched node just before the store reads the next request: the
    // server writes the event first, then the reply.
    guest.channel.before_service = [&] { REQUIRE(machine.store.write("/local/domain/1/watched", "changed")); };
    CHECK(read_value(xs, "value") == "v");
    CHECK(xs.queued_events() == 1);
    CHECK(xs.stale_replies() == 0);
    char buffer[64];
    XsResult<XsWatchEvent> event = xs.next_event(buffer, 0);
    REQUIRE(event);
    CHECK(event->path == "watched");
}

TEST_CASE("libguest: xenstore next_event filters by token and keeps an event too big for the buffer",
          "[libguest][xenstore]") {
    Machine machine;
    XenstoreClient& xs = machine.connect(1).client;
    REQUIRE(xs.watch("a", "first"));
    REQUIRE(xs.watch("some/much/longer/path", "second"));
    CHECK(xs.queued_events() == 2);
    char small[8];
    CHECK(error_of(xs.next_event(small, 0, "second")) == XsErrc::erange);
    CHECK(xs.queued_events() == 2);
    char buffer[64];
    XsResult<XsWatchEvent> event = xs.next_event(buffer, 0, "second");
    REQUIRE(event);
    CHECK(event->path == "some/much/longer/path");
    event = xs.next_event(buffer, 0);
    REQUIRE(event);
    CHECK(event->token == "first");
    CHECK(xs.queued_events() == 0);
}

TEST_CASE("libguest: xenstore events beyond the queue's storage are dropped and counted, the rest intact",
          "[libguest][xenstore]") {
    Machine machine;
    XenstoreClient& xs = machine.connect(1).client;
    REQUIRE(xs.watch("w", "t"));
    // Each event is "w/nNNN\0t\0" (9-10 bytes) plus a 4-byte record: ~300 fit in 4 KiB.
    for (int i = 0; i < 400; ++i)
        REQUIRE(xs.write("w/n" + std::to_string(i), ""));
    CHECK(xs.dropped_events() > 0);
    CHECK(xs.queued_events() + xs.dropped_events() == 401);
    char buffer[32];
    XsResult<XsWatchEvent> event = xs.next_event(buffer, 0);
    REQUIRE(event);
    CHECK(event->path == "w");
    for (std::size_t i = 0; xs.queued_events() != 0; ++i) {
        event = xs.next_event(buffer, 0);
        REQUIRE(event);
        CHECK(event->path == "w/n" + std::to_string(i));
        CHECK(event->token == "t");
    }
    // With room again, events are queued again.
    REQUIRE(xs.write("w", "again"));
    CHECK(xs.queued_events() == 1);
}

TEST_CASE("libguest: xenstore a request bigger than the ring's free space waits for the store to consume",
          "[libguest][xenstore]") {
    Machine machine;
    Guest& guest = machine.connect(1);
    guest.channel.service_on_notify = false;  // the store runs only when the client waits
    const std::string big(2000, 'b');  // the value quota is 2048
    REQUIRE(guest.client.write("big", big));
    CHECK(guest.channel.waits >= 2);  // 2020 bytes through a 1024-byte ring
    CHECK(machine.value("/local/domain/1/big") == big);
    // The reply (2000 bytes) comes back through the 1024-byte rsp ring too.
    CHECK(read_value(guest.client, "big") == big);
    CHECK_FALSE(guest.channel.runaway);
}

TEST_CASE("libguest: xenstore messages split over the ring's wrap and over 2^32 are reassembled",
          "[libguest][xenstore]") {
    for (std::uint32_t start : {1000u, 0xffffff00u}) {
        Machine machine;
        Guest& guest = machine.connect(1, false, start);
        const std::string value(700, 'w');
        for (int i = 0; i < 4; ++i) {
            REQUIRE(guest.client.write("wrap", value + std::to_string(i)));
            CHECK(read_value(guest.client, "wrap") == value + std::to_string(i));
        }
        CHECK(guest.page->rsp_prod - start > 2 * abi::XENSTORE_RING_SIZE);
        CHECK(guest.client.broken() == XsBroken::no);
    }
}

TEST_CASE("libguest: xenstore a request that gets no reply before the deadline is ETIME, its late reply dropped",
          "[libguest][xenstore]") {
    Machine machine;
    Guest& guest = machine.connect(1);
    XenstoreClient& xs = guest.client;
    REQUIRE(xs.write("v", "1"));
    guest.channel.store_stopped = true;  // the store does not run at all
    xs.set_timeout(3 * millisecond);
    const std::uint64_t start = guest.channel.clock;
    char value[8];
    CHECK(error_of(xs.read("v", value)) == XsErrc::etime);
    CHECK(guest.channel.clock == start + 3 * millisecond);
    CHECK(xs.broken() == XsBroken::no);
    // The reply to the abandoned request comes with the next one, and is dropped as stale.
    xs.set_timeout(XenstoreClient::forever);
    guest.channel.store_stopped = false;
    CHECK(read_value(xs, "v") == "1");
    CHECK(xs.stale_replies() == 1);
}
