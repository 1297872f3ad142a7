// xenbus over the real store: device paths, state changes, the handshake of a blkfront/blkback
// pair on two connections (each end on a thread of its own), transactions retried on EAGAIN.
#include "xenstore_fixture.hpp"

#include <guest/xenbus.hpp>

using namespace xenstore_client_test;
using hv::DomId;
using hv::xenstore::Access;
using hv::xenstore::Permission;

namespace {

constexpr std::string_view frontend = "/local/domain/1/device/vbd/51712";
constexpr std::string_view backend = "/local/domain/2/backend/vbd/1/51712";

// What the toolstack does before either driver runs: both directories, each owned by its end and
// readable by the other, naming each other, state Initialising.
void create_vbd(Machine& machine) {
    hv::xenstore::Store& store = machine.store;
    REQUIRE(store.write(std::string(frontend) + "/backend", backend));
    REQUIRE(store.write(std::string(frontend) + "/backend-id", "2"));
    REQUIRE(store.write(std::string(frontend) + "/state", "1"));
    REQUIRE(store.write(std::string(backend) + "/frontend", frontend));
    REQUIRE(store.write(std::string(backend) + "/frontend-id", "1"));
    REQUIRE(store.write(std::string(backend) + "/params", "disk.img"));
    REQUIRE(store.write(std::string(backend) + "/state", "1"));
    const Permission front_perms[] = {{DomId{1}, Access::none}, {DomId{2}, Access::read}};
    const Permission back_perms[] = {{DomId{2}, Access::none}, {DomId{1}, Access::read}};
    for (const char* key : {"", "/backend", "/backend-id", "/state"})
        REQUIRE(store.set_perms(std::string(frontend) + key, front_perms));
    for (const char* key : {"", "/frontend", "/frontend-id", "/params", "/state"})
        REQUIRE(store.set_perms(std::string(backend) + key, back_perms));
    // The backend domain needs to create nodes under its backend directory's parents too.
    REQUIRE(store.set_perms("/local/domain/2/backend", back_perms));
}

std::string failed(std::string step, XsErrc error) { return step + ": " + std::to_string(static_cast<int>(error)); }

}  // namespace

TEST_CASE("libguest: xenbus device paths are built as the toolstack lays them out", "[libguest][xenbus]") {
    char path[xenbus_path_max];
    XsResult<std::string_view> built = frontend_device_path(path, 1, "vbd", 51712);
    REQUIRE(built);
    CHECK(*built == frontend);
    built = backend_device_path(path, 2, "vbd", 1, 51712);
    REQUIRE(built);
    CHECK(*built == backend);
    char tiny[16];
    CHECK(error_of(frontend_device_path(tiny, 1, "vbd", 51712)) == XsErrc::enametoolong);
}

TEST_CASE("libguest: xenbus reads the other end and reads and switches states", "[libguest][xenbus]") {
    Machine machine;
    create_vbd(machine);
    XenstoreClient& front = machine.connect(1).client;
    char path[xenbus_path_max];
    XsResult<XenbusPeer> peer = read_other_end(front, frontend, XenbusEnd::backend, path);
    REQUIRE(peer);
    CHECK(peer->path == backend);
    CHECK(peer->domain == 2);
    CHECK(*read_state(front, backend) == XenbusState::initialising);
    CHECK(*read_state(front, "/local/domain/1/device/vbd/99") == XenbusState::unknown);
    CHECK(*read_state(front, "/local/domain/2/private/vbd/1") == XenbusState::unknown);  // EACCES: not readable
    CHECK(*read_number(front, backend, "state") == 1);
    CHECK(error_of(read_number(front, backend, "state", 0)) == XsErrc::ebadmsg);  // over max
    CHECK(error_of(read_number(front, backend, "nothing")) == XsErrc::enoent);
    CHECK(*parse_number("18446744073709551615") == ~std::uint64_t{0});
    for (const char* bad : {"", "-1", "+1", "01", "1x", " 1", "18446744073709551616"})
        CHECK(error_of(parse_number(bad)) == XsErrc::ebadmsg);

    REQUIRE(front.watch(std::string(frontend) + "/state", "w"));
    REQUIRE(front.discard_events({}) == 1);
    CHECK(switch_state(front, frontend, XenbusState::initialising));  // already: nothing written
    CHECK(front.queued_events() == 0);
    CHECK(switch_state(front, frontend, XenbusState::initialised));
    CHECK(machine.value(std::string(frontend) + "/state") == "3");
    CHECK(front.discard_events({}) == 1);

    // A device the toolstack removed is not made again.
    REQUIRE(machine.store.rm(frontend));
    CHECK(error_of(switch_state(front, frontend, XenbusState::closed)) == XsErrc::enoent);
    CHECK_FALSE(machine.store.children(frontend));

    REQUIRE(machine.store.write("/local/domain/1/garbage/state", "4x"));
    CHECK(error_of(read_state(front, "/local/domain/1/garbage")) == XsErrc::ebadmsg);
    REQUIRE(machine.store.write("/local/domain/1/garbage/state", "9"));
    CHECK(error_of(read_state(front, "/local/domain/1/garbage")) == XsErrc::ebadmsg);
    REQUIRE(machine.store.write("/local/domain/1/garbage/backend-id", "65536"));
    REQUIRE(machine.store.write("/local/domain/1/garbage/backend", "/x"));
    CHECK(error_of(read_other_end(front, "/local/domain/1/garbage", XenbusEnd::backend, path)) == XsErrc::ebadmsg);
}

TEST_CASE("libguest: xenbus wait_for_state times out, or fails ENODEV when the other end closes, and unwatches",
          "[libguest][xenbus]") {
    Machine machine;
    create_vbd(machine);
    Guest& guest = machine.connect(1);
    XenbusState seen = XenbusState::unknown;
    const std::uint64_t deadline = guest.channel.now() + 20 * millisecond;
    CHECK(error_of(wait_for_state(guest.client, backend, XenbusState::connected, deadline, &seen)) == XsErrc::etime);
    CHECK(seen == XenbusState::initialising);
    CHECK(guest.connection.watch_count() == 0);
    CHECK(guest.client.queued_events() == 0);

    // The backend moves on while the frontend waits: a toolstack write at the next service.
    guest.channel.before_service = [&] { REQUIRE(machine.store.write(std::string(backend) + "/state", "5")); };
    CHECK(error_of(wait_for_state(guest.client, backend, XenbusState::connected, XenstoreClient::forever, &seen)) ==
          XsErrc::enodev);
    CHECK(seen == XenbusState::closing);
    CHECK(wait_for_state(guest.client, backend, XenbusState::closing, XenstoreClient::forever));
    CHECK(guest.connection.watch_count() == 0);
    CHECK_FALSE(guest.channel.runaway);
}

TEST_CASE("libguest: xenbus wait_while_closed waits out a Closed backend for a frontend coming back",
          "[libguest][xenbus]") {
    Machine machine;
    create_vbd(machine);
    Guest& guest = machine.connect(1);
    CHECK(*wait_while_closed(guest.client, backend, XenstoreClient::forever) == XenbusState::initialising);
    REQUIRE(machine.store.write(std::string(backend) + "/state", "6"));
    CHECK(error_of(wait_while_closed(guest.client, backend, guest.channel.now() + 20 * millisecond)) == XsErrc::etime);
    CHECK(guest.connection.watch_count() == 0);

    // Closing, then InitWait, each written by the backend while the frontend waits (a hook runs
    // once, before the next service).
    int writes = 0;
    guest.channel.before_service = [&] {
        REQUIRE(machine.store.write(std::string(backend) + "/state", "5"));
        ++writes;
        guest.channel.before_service = [&] {
            REQUIRE(machine.store.write(std::string(backend) + "/state", "2"));
            ++writes;
        };
    };
    CHECK(*wait_while_closed(guest.client, backend, XenstoreClient::forever) == XenbusState::init_wait);
    CHECK(writes == 2);
    CHECK(guest.connection.watch_count() == 0);
    CHECK(guest.client.queued_events() == 0);
    CHECK_FALSE(guest.channel.runaway);
    CHECK(error_of(wait_while_closed(guest.client, "/local/domain/1/device/vbd/99/x/y/z/" + std::string(300, 'a'),
                                     XenstoreClient::forever)) == XsErrc::enametoolong);
}

TEST_CASE("libguest: xenbus publish writes every key and the state in one transaction, retried on EAGAIN",
          "[libguest][xenbus]") {
    Machine machine;
    create_vbd(machine);
    Guest& guest = machine.connect(1);
    // The second service after the call starts falls inside the transaction: a commit by someone
    // else there makes the first attempt end EAGAIN.
    int conflicts = 0;
    guest.channel.before_service = [&] {
        guest.channel.before_service = [&] {
            ++conflicts;
            REQUIRE(machine.store.write("/elsewhere", "x"));
        };
    };
    const XenbusKey keys[] = {{"ring-ref", "8"}, {"event-channel", "5"}, {"protocol", "x86_64-abi"}};
    CHECK(publish(guest.client, frontend, keys, XenbusState::initialised));
    CHECK(conflicts == 1);
    CHECK(machine.value(std::string(frontend) + "/ring-ref") == "8");
    CHECK(machine.value(std::string(frontend) + "/event-channel") == "5");
    CHECK(machine.value(std::string(frontend) + "/protocol") == "x86_64-abi");
    CHECK(machine.value(std::string(frontend) + "/state") == "3");

    // Someone committing during every attempt: EAGAIN surfaces, nothing is written.
    std::function<void()> always = [&] {
        ++conflicts;
        REQUIRE(machine.store.write("/elsewhere", std::to_string(conflicts)));
        guest.channel.before_service = always;
    };
    guest.channel.before_service = always;
    const XenbusKey other[] = {{"ring-ref", "9"}};
    CHECK(error_of(publish(guest.client, frontend, other)) == XsErrc::eagain);
    guest.channel.before_service = nullptr;
    CHECK(machine.value(std::string(frontend) + "/ring-ref") == "8");
    CHECK(guest.connection.transaction_count() == 0);
}

TEST_CASE("libguest: xenbus a frontend and a backend on two connections go through the handshake and close",
          "[libguest][xenbus]") {
    Machine machine;
    create_vbd(machine);
    Guest& front = machine.connect(1);
    Guest& back = machine.connect(2);
    front.channel.threaded = back.channel.threaded = true;
    const std::uint64_t deadline = 10'000 * millisecond;  // of each end's fake clock
    std::string front_failure, back_failure, ring_ref, event_channel;

    std::thread backend_thread{[&] {
        XenstoreClient& xs = back.client;
        char path[xenbus_path_max];
        XsResult<XenbusPeer> peer = read_other_end(xs, backend, XenbusEnd::frontend, path);
        if (!peer || peer->domain != 1)
            return void(back_failure = "frontend");
        const std::string other{peer->path};
        if (XsResult<void> done = switch_state(xs, backend, XenbusState::init_wait); !done)
            return void(back_failure = failed("init_wait", done.error()));
        if (XsResult<void> done = wait_for_state(xs, other, XenbusState::initialised, deadline); !done)
            return void(back_failure = failed("wait initialised", done.error()));
        ring_ref = read_value(xs, other + "/ring-ref");
        event_channel = read_value(xs, other + "/event-channel");
        const XenbusKey keys[] = {{"sectors", "2048"}, {"sector-size", "512"}};
        if (XsResult<void> done = publish(xs, backend, keys, XenbusState::connected); !done)
            return void(back_failure = failed("connected", done.error()));
        if (XsResult<void> done = wait_for_state(xs, other, XenbusState::closing, deadline); !done)
            return void(back_failure = failed("wait closing", done.error()));
        if (XsResult<void> done = switch_state(xs, backend, XenbusState::closed); !done)
            return void(back_failure = failed("closed", done.error()));
    }};

    [&] {
        XenstoreClient& xs = front.client;
        char path[xenbus_path_max];
        XsResult<XenbusPeer> peer = read_other_end(xs, frontend, XenbusEnd::backend, path);
        if (!peer || peer->domain != 2)
            return void(front_failure = "backend");
        const std::string other{peer->path};
        if (XsResult<void> done = wait_for_state(xs, other, XenbusState::init_wait, deadline); !done)
            return void(front_failure = failed("wait init_wait", done.error()));
        const XenbusKey keys[] = {{"ring-ref", "8"}, {"event-channel", "5"}};
        if (XsResult<void> done = publish(xs, frontend, keys, XenbusState::initialised); !done)
            return void(front_failure = failed("initialised", done.error()));
        if (XsResult<void> done = wait_for_state(xs, other, XenbusState::connected, deadline); !done)
            return void(front_failure = failed("wait connected", done.error()));
        if (read_value(xs, other + "/sectors") != "2048")
            return void(front_failure = "sectors");
        if (XsResult<void> done = switch_state(xs, frontend, XenbusState::connected); !done)
            return void(front_failure = failed("connected", done.error()));
        if (XsResult<void> done = switch_state(xs, frontend, XenbusState::closing); !done)
            return void(front_failure = failed("closing", done.error()));
        if (XsResult<void> done = wait_for_state(xs, other, XenbusState::closed, deadline); !done)
            return void(front_failure = failed("wait closed", done.error()));
        if (XsResult<void> done = switch_state(xs, frontend, XenbusState::closed); !done)
            return void(front_failure = failed("closed", done.error()));
    }();
    backend_thread.join();

    CHECK(front_failure.empty());
    CHECK(back_failure.empty());
    INFO(front_failure << " / " << back_failure);
    CHECK(ring_ref == "8");
    CHECK(event_channel == "5");
    CHECK(machine.value(std::string(frontend) + "/state") == "6");
    CHECK(machine.value(std::string(backend) + "/state") == "6");
    CHECK(front.connection.watch_count() == 0);
    CHECK(back.connection.watch_count() == 0);
    CHECK_FALSE(front.channel.runaway);
    CHECK_FALSE(back.channel.runaway);
    CHECK(machine.store.check_invariants());
}
