// Transactions: isolation, commit, conflicts, abort, bad ids, quotas, watches at commit.
#include "xenstore_fixture.hpp"

using namespace xenstore_test;

namespace {

std::uint32_t start(Client& client) {
    const std::string reply = client.ask(abi::XS_TRANSACTION_START, strings({""}));
    REQUIRE(reply.size() >= 2);
    REQUIRE(reply.back() == '\0');
    return static_cast<std::uint32_t>(std::stoul(reply.substr(0, reply.size() - 1)));
}

std::string end(Client& client, std::uint32_t tx, bool commit) {
    return client.ask(abi::XS_TRANSACTION_END, strings({commit ? "T" : "F"}), tx);
}

}  // namespace

TEST_CASE_METHOD(StoreFixture, "xenstore: writes in a transaction are invisible outside until it commits",
                 "[xenstore]") {
    Client& dom0 = connect(0, true);
    REQUIRE(dom0.write("/t/old", "1") == strings({"OK"}));
    const std::uint32_t tx = start(dom0);
    CHECK(tx != 0);
    CHECK(dom0.write("/t/new", "2", tx) == strings({"OK"}));
    CHECK(dom0.write("/t/old", "changed", tx) == strings({"OK"}));
    CHECK(dom0.ask(abi::XS_RM, strings({"/t/gone"}), tx) == strings({"OK"}));
    CHECK(dom0.read("/t/new", tx) == "2");
    CHECK(dom0.read("/t/new") == "ENOENT");
    CHECK(dom0.read("/t/old") == "1");
    CHECK(end(dom0, tx, true) == strings({"OK"}));
    CHECK(dom0.read("/t/new") == "2");
    CHECK(dom0.read("/t/old") == "changed");
    CHECK(dom0.read("/t/new", tx) == "ENOENT");  // the id is gone
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a transaction sees the store as it was when it started", "[xenstore]") {
    Client& dom0 = connect(0, true);
    REQUIRE(dom0.write("/s", "before") == strings({"OK"}));
    const std::uint32_t tx = start(dom0);
    REQUIRE(store->write("/s", "after"));
    CHECK(dom0.read("/s", tx) == "before");
    CHECK(end(dom0, tx, true) == strings({"OK"}));  // it changed nothing: a consistent snapshot
}

TEST_CASE_METHOD(StoreFixture, "xenstore: commit fails EAGAIN after an outside change, and the store keeps it",
                 "[xenstore]") {
    Client& guest = connect(1);
    Client& dom0 = connect(0, true);
    const std::uint32_t tx = start(guest);
    REQUIRE(guest.write("mine", "tx", tx) == strings({"OK"}));
    REQUIRE(dom0.write("/elsewhere", "x") == strings({"OK"}));
    const std::uint32_t owned = store->nodes_owned(DomId{1});
    CHECK(end(guest, tx, true) == "EAGAIN");
    CHECK(guest.read("mine") == "ENOENT");
    CHECK(store->nodes_owned(DomId{1}) == owned);
    CHECK(guest.connection.transaction_count() == 0);
    CHECK(end(guest, tx, false) == "ENOENT");
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: an aborted transaction leaves nothing behind", "[xenstore]") {
    Client& guest = connect(1);
    const std::uint64_t generation = store->generation();
    const long blocks = static_cast<long>(memory.blocks.size());
    const std::uint32_t tx = start(guest);
    REQUIRE(guest.write("a/b/c", "v", tx) == strings({"OK"}));
    REQUIRE(guest.ask(abi::XS_SET_PERMS, strings({"a", "b1"}), tx) == strings({"OK"}));
    CHECK(end(guest, tx, false) == strings({"OK"}));
    CHECK(guest.read("a") == "ENOENT");
    CHECK(store->generation() == generation);
    CHECK(static_cast<long>(memory.blocks.size()) == blocks);
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a committed transaction fires its watches, counts its nodes", "[xenstore]") {
    Client& guest = connect(1);
    Client& dom0 = connect(0, true);
    REQUIRE(dom0.ask(abi::XS_WATCH, strings({"/local/domain/1", "w"})) == strings({"OK"}));
    dom0.take_events();
    const std::uint32_t tx = start(guest);
    REQUIRE(guest.write("x", "1", tx) == strings({"OK"}));
    REQUIRE(guest.write("y/z", "2", tx) == strings({"OK"}));
    CHECK(dom0.take_events().empty());
    REQUIRE(end(guest, tx, true) == strings({"OK"}));
    CHECK(dom0.take_events() == Events{{"/local/domain/1/x", "w"}, {"/local/domain/1/y/z", "w"}});
    CHECK(store->nodes_owned(DomId{1}) == 4);
    // A privileged transaction creating nodes for domain 1 is counted too.
    const std::uint32_t tx0 = start(dom0);
    REQUIRE(dom0.write("/local/domain/1/from-dom0", "", tx0) == strings({"OK"}));
    REQUIRE(end(dom0, tx0, true) == strings({"OK"}));
    CHECK(store->nodes_owned(DomId{1}) == 5);
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: bad transaction ids and ends are refused", "[xenstore][hostile]") {
    Client& guest = connect(1);
    CHECK(guest.read("x", 77) == "ENOENT");
    CHECK(guest.ask(abi::XS_TRANSACTION_START, strings({""}), 5) == "EBUSY");
    const std::uint32_t tx = start(guest);
    CHECK(guest.ask(abi::XS_TRANSACTION_END, strings({"X"}), tx) == "EINVAL");
    CHECK(guest.ask(abi::XS_TRANSACTION_END, strings({"T"})) == "ENOENT");
    Client& other = connect(2);
    CHECK(other.read("/local/domain/2", tx) == "ENOENT");  // ids are per connection
    CHECK(end(guest, tx, true) == strings({"OK"}));
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a domain may hold only so many transactions", "[xenstore]") {
    Client& guest = connect(1);
    for (std::uint32_t i = 0; i < store->limits().transactions_per_domain; ++i)
        start(guest);
    CHECK(guest.ask(abi::XS_TRANSACTION_START, strings({""})) == "ENOSPC");
    CHECK(guest.ask(abi::XS_RESET_WATCHES, "") == strings({"OK"}));
    CHECK(guest.connection.transaction_count() == 0);
    start(guest);
}
