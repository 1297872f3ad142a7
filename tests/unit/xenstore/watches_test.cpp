// Watches: the first event, events on changes at and below, relative paths, permissions, the
// special events, unwatch and release.
#include "xenstore_fixture.hpp"

using namespace xenstore_test;

TEST_CASE_METHOD(StoreFixture, "xenstore: a watch fires once at once, then on changes at and below its path",
                 "[xenstore]") {
    Client& dom0 = connect(0, true);
    CHECK(dom0.ask(abi::XS_WATCH, strings({"/w", "tok"})) == strings({"OK"}));
    CHECK(dom0.take_events() == Events{{"/w", "tok"}});
    REQUIRE(dom0.write("/w", "1") == strings({"OK"}));
    REQUIRE(dom0.write("/w/child/deep", "2") == strings({"OK"}));
    REQUIRE(dom0.write("/wx", "sibling") == strings({"OK"}));
    REQUIRE(dom0.write("/other", "3") == strings({"OK"}));
    REQUIRE(dom0.ask(abi::XS_RM, strings({"/w/child"})) == strings({"OK"}));
    CHECK(dom0.take_events() == Events{{"/w", "tok"}, {"/w/child/deep", "tok"}, {"/w/child", "tok"}});
}

TEST_CASE_METHOD(StoreFixture, "xenstore: removing a parent fires the watches below it with their own path",
                 "[xenstore]") {
    Client& dom0 = connect(0, true);
    REQUIRE(dom0.write("/top/mid/leaf", "") == strings({"OK"}));
    REQUIRE(dom0.ask(abi::XS_WATCH, strings({"/top/mid/leaf", "a"})) == strings({"OK"}));
    REQUIRE(dom0.ask(abi::XS_WATCH, strings({"/", "root"})) == strings({"OK"}));
    dom0.take_events();
    REQUIRE(dom0.ask(abi::XS_RM, strings({"/top"})) == strings({"OK"}));
    Events seen = dom0.take_events();
    std::sort(seen.begin(), seen.end());
    CHECK(seen == Events{{"/top", "root"}, {"/top/mid/leaf", "a"}});
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a relative watch gets relative event paths", "[xenstore]") {
    Client& guest = connect(1);
    CHECK(guest.ask(abi::XS_WATCH, strings({"device", "dev"})) == strings({"OK"}));
    CHECK(guest.take_events() == Events{{"device", "dev"}});
    REQUIRE(store->write("/local/domain/1/device/vbd/51712", "x"));
    CHECK(guest.connection.pending_output());  // waits for a service pass
    CHECK(guest.take_events() == Events{{"device/vbd/51712", "dev"}});
}

TEST_CASE_METHOD(StoreFixture, "xenstore: events go only to watchers that may read the node", "[xenstore][hostile]") {
    Client& owner = connect(1);
    Client& spy = connect(2);
    CHECK(spy.ask(abi::XS_WATCH, strings({"/local/domain/1", "spy"})) == strings({"OK"}));
    spy.take_events();
    REQUIRE(owner.write("secret", "s") == strings({"OK"}));
    REQUIRE(owner.ask(abi::XS_SET_PERMS, strings({"public", "b1"})) == "ENOENT");
    REQUIRE(owner.write("public", "p") == strings({"OK"}));
    REQUIRE(owner.ask(abi::XS_SET_PERMS, strings({"public", "r1"})) == strings({"OK"}));
    CHECK(spy.take_events() == Events{{"/local/domain/1/public", "spy"}});
    REQUIRE(owner.ask(abi::XS_RM, strings({"secret"})) == strings({"OK"}));
    CHECK(spy.take_events().empty());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a removal reaches a watch below it as the watched node was readable",
                 "[xenstore][hostile]") {
    // Domain 1's home is private, its device's state readable by domain 2 (a split device's
    // backend): when domain 1 goes, domain 2 learns its frontend's state went, and no more.
    REQUIRE(store->write("/local/domain/1/device/vbd/1/state", "4"));
    REQUIRE(store->write("/local/domain/1/device/vbd/1/private", "p"));
    const Permission shared[] = {{DomId{1}, Access::none}, {DomId{2}, Access::read}};
    REQUIRE(store->set_perms("/local/domain/1/device/vbd/1/state", shared));
    Client& backend = connect(2);
    REQUIRE(backend.ask(abi::XS_WATCH, strings({"/local/domain/1/device/vbd/1/state", "front"})) == strings({"OK"}));
    REQUIRE(backend.ask(abi::XS_WATCH, strings({"/local/domain/1/device/vbd/1/private", "peek"})) == strings({"OK"}));
    REQUIRE(backend.ask(abi::XS_WATCH, strings({"/local/domain/1/device/vbd/1/state/none", "below"})) == strings({"OK"}));
    backend.take_events();
    REQUIRE(store->release(DomId{1}));
    Events seen = backend.take_events();
    std::sort(seen.begin(), seen.end());
    // A watch on a node that never existed goes with its nearest ancestor that did: readable here.
    CHECK(seen == Events{{"/local/domain/1/device/vbd/1/state", "front"},
                         {"/local/domain/1/device/vbd/1/state/none", "below"}});
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a removal committed by a transaction reaches a watch below as one outside does",
                 "[xenstore][hostile]") {
    Client& frontend = connect(1);
    Client& backend = connect(2);
    REQUIRE(frontend.write("device/vbd/1/state", "4") == strings({"OK"}));
    REQUIRE(frontend.ask(abi::XS_SET_PERMS, strings({"device/vbd/1/state", "n1", "r2"})) == strings({"OK"}));
    REQUIRE(backend.ask(abi::XS_WATCH, strings({"/local/domain/1/device/vbd/1/state", "front"})) == strings({"OK"}));
    backend.take_events();
    const std::string started = frontend.ask(abi::XS_TRANSACTION_START, strings({""}));
    REQUIRE(started.size() >= 2);
    const auto tx = static_cast<std::uint32_t>(std::stoul(started.substr(0, started.size() - 1)));
    REQUIRE(frontend.ask(abi::XS_RM, strings({"device"}), tx) == strings({"OK"}));
    REQUIRE(frontend.ask(abi::XS_TRANSACTION_END, strings({"T"}), tx) == strings({"OK"}));
    CHECK(backend.take_events() == Events{{"/local/domain/1/device/vbd/1/state", "front"}});
}

TEST_CASE_METHOD(StoreFixture, "xenstore: unwatch stops a watch; a second identical watch is EEXIST", "[xenstore]") {
    Client& dom0 = connect(0, true);
    REQUIRE(dom0.ask(abi::XS_WATCH, strings({"/u", "t"})) == strings({"OK"}));
    CHECK(dom0.ask(abi::XS_WATCH, strings({"/u", "t"})) == "EEXIST");
    CHECK(dom0.ask(abi::XS_WATCH, strings({"/u", "t2"})) == strings({"OK"}));
    CHECK(dom0.ask(abi::XS_UNWATCH, strings({"/u", "t"})) == strings({"OK"}));
    CHECK(dom0.ask(abi::XS_UNWATCH, strings({"/u", "t"})) == "ENOENT");
    dom0.take_events();
    REQUIRE(dom0.write("/u", "") == strings({"OK"}));
    CHECK(dom0.take_events() == Events{{"/u", "t2"}});
    CHECK(dom0.ask(abi::XS_RESET_WATCHES, "") == strings({"OK"}));
    REQUIRE(dom0.write("/u", "") == strings({"OK"}));
    CHECK(dom0.take_events().empty());
    CHECK(dom0.connection.watch_count() == 0);
}

TEST_CASE_METHOD(StoreFixture, "xenstore: @introduceDomain and @releaseDomain reach privileged watchers only",
                 "[xenstore]") {
    Client& dom0 = connect(0, true);
    Client& guest = connect(1);
    REQUIRE(dom0.ask(abi::XS_WATCH, strings({"@introduceDomain", "in"})) == strings({"OK"}));
    REQUIRE(dom0.ask(abi::XS_WATCH, strings({"@releaseDomain", "out"})) == strings({"OK"}));
    REQUIRE(guest.ask(abi::XS_WATCH, strings({"@releaseDomain", "g"})) == strings({"OK"}));
    dom0.take_events();
    guest.take_events();
    REQUIRE(store->introduce(DomId{5}));
    REQUIRE(store->release(DomId{5}));
    CHECK(dom0.take_events() == Events{{"@introduceDomain", "in"}, {"@releaseDomain", "out"}});
    CHECK(guest.take_events().empty());
    CHECK(guest.ask(abi::XS_WRITE, strings({"@x", "v"})) == "EINVAL");
}

TEST_CASE_METHOD(StoreFixture, "xenstore: release drops the domain's watches and transactions", "[xenstore]") {
    Client& guest = connect(2);
    REQUIRE(guest.ask(abi::XS_WATCH, strings({"/local/domain/2", "home"})) == strings({"OK"}));
    REQUIRE(guest.ask(abi::XS_TRANSACTION_START, strings({""})) != "ENOSPC");
    CHECK(guest.connection.transaction_count() == 1);
    guest.take_events();
    REQUIRE(store->release(DomId{2}));
    CHECK(guest.connection.watch_count() == 0);
    CHECK(guest.connection.transaction_count() == 0);
    REQUIRE(store->write("/local/domain/2/x", ""));
    CHECK(guest.take_events() == Events{{"/local/domain/2", "home"}});  // the removal, queued before the drop
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a full event queue drops events and counts them", "[xenstore]") {
    clients.clear();
    store.reset();
    Limits limits;
    limits.events_per_connection = 3;
    store.emplace(memory, limits);
    Client& dom0 = connect(0, true);
    REQUIRE(dom0.ask(abi::XS_WATCH, strings({"/q", "t"})) == strings({"OK"}));
    for (int i = 0; i < 5; ++i)
        REQUIRE(store->write("/q", std::to_string(i)));
    CHECK(dom0.connection.queued_events() == 3);
    CHECK(dom0.connection.dropped_events() == 2);
    CHECK(dom0.take_events().size() == 4);  // the first event, delivered before, and three
}
