// The byte quota: every block is charged to a domain (nodes to their owner, a transaction's copies
// to its domain, watches and events to their connection's), a request over the quota is refused
// with nothing changed, and every charge goes back when its block does.
#include "xenstore_fixture.hpp"

using namespace xenstore_test;

namespace {

std::uint64_t bytes(Store& store, std::uint16_t domain) { return store.bytes_charged(DomId{domain}); }

// What a refused request must leave as it was: blocks, charges, counts, generation, and the names
// and values under a directory of domain 1's home.
struct State {
    std::size_t blocks;
    std::uint64_t bytes1, bytes2;
    std::uint32_t nodes1;
    std::uint64_t generation;
    std::string listing;
    bool operator==(const State&) const = default;
};

State state(StoreFixture& f, Client& guest, std::string_view directory, std::uint32_t tx = 0) {
    std::string listing = guest.ask(abi::XS_DIRECTORY, strings({directory}), tx);
    for (std::size_t start = 0, end; (end = listing.find('\0', start)) != std::string::npos; start = end + 1)
        listing += "=" + guest.read(std::string(directory) + "/" + listing.substr(start, end - start), tx).substr(0, 8);
    return {f.memory.blocks.size(), bytes(*f.store, 1), bytes(*f.store, 2), f.store->nodes_owned(DomId{1}),
            f.store->generation(), listing};
}

std::uint32_t start(Client& client) {
    const std::string reply = client.ask(abi::XS_TRANSACTION_START, strings({""}));
    REQUIRE(reply.size() >= 2);
    REQUIRE(reply.back() == '\0');
    return static_cast<std::uint32_t>(std::stoul(reply));
}

const std::string ok = strings({"OK"});
const std::string big(2048, 'x');

// Writes big values at big/0, big/1 ... until one is refused; returns how many were written.
int fill_with_big_values(StoreFixture& f, Client& guest, std::uint32_t tx = 0) {
    int written = 0;
    for (;; ++written) {
        REQUIRE(written < 100);
        const std::string reply = guest.write("big/" + std::to_string(written), big, tx);
        REQUIRE(f.store->check_invariants());
        if (reply != ok) {
            REQUIRE(reply == "ENOSPC");
            return written;
        }
        CHECK(bytes(*f.store, 1) <= f.store->limits().bytes_per_domain);
    }
}

}  // namespace

TEST_CASE_METHOD(StoreFixture, "xenstore: a domain over its byte quota gets ENOSPC and the others still write",
                 "[xenstore][hostile]") {
    Client& guest = connect(1);
    Client& other = connect(2);
    const int written = fill_with_big_values(*this, guest);
    // The byte quota bites long before the node quota (1000) would.
    CHECK(written >= 16);
    CHECK(written < 32);
    CHECK(bytes(*store, 1) + 2048 > store->limits().bytes_per_domain);
    // The refusal changed nothing.
    const State before = state(*this, guest, "big");
    CHECK(guest.write("big/" + std::to_string(written), big) == "ENOSPC");
    CHECK(guest.write("big/0/below", big) == "ENOSPC");
    CHECK(state(*this, guest, "big") == before);
    CHECK(store->check_invariants());
    // Another domain, and the toolstack, are not affected.
    CHECK(other.write("big", big) == ok);
    CHECK(bytes(*store, 2) > 2048);
    REQUIRE(store->write("/local/domain/1/from-toolstack", big));  // the toolstack is not limited
    CHECK(bytes(*store, 1) > store->limits().bytes_per_domain);
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: at its byte quota a domain may rewrite a value in place and remove nodes",
                 "[xenstore]") {
    Client& guest = connect(1);
    const int written = fill_with_big_values(*this, guest);
    const std::uint64_t full = bytes(*store, 1);
    CHECK(guest.write("big/0", std::string(2048, 'y')) == ok);
    CHECK(bytes(*store, 1) == full);
    CHECK(guest.ask(abi::XS_RM, strings({"big/1"})) == ok);
    CHECK(bytes(*store, 1) < full);
    CHECK(guest.write("big/" + std::to_string(written), big) == ok);
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: byte charges return to where they were after rm, unwatch, events, "
                               "transaction end and release",
                 "[xenstore]") {
    Client& guest = connect(1);
    const std::uint64_t base = bytes(*store, 1);
    CHECK(base > 0);  // its home
    REQUIRE(guest.write("a/b", "v") == ok);
    CHECK(bytes(*store, 1) > base);
    REQUIRE(guest.ask(abi::XS_RM, strings({"a"})) == ok);
    CHECK(bytes(*store, 1) == base);
    CHECK(store->check_invariants());

    REQUIRE(guest.ask(abi::XS_WATCH, strings({"w", "token"})) == ok);
    const std::uint64_t watching = bytes(*store, 1);
    CHECK(watching > base);
    // Events wait in the connection, charged to it, until the guest takes them.
    guest.take_events();
    CHECK(bytes(*store, 1) == watching);
    for (int i = 0; i < 5; ++i)
        REQUIRE(store->write("/local/domain/1/w/" + std::to_string(i), ""));
    const std::uint64_t queued = bytes(*store, 1);
    CHECK(guest.connection.queued_events() == 5);
    CHECK(store->check_invariants());
    CHECK(guest.take_events().size() == 5);
    CHECK(bytes(*store, 1) < queued);
    REQUIRE(store->rm("/local/domain/1/w"));
    guest.take_events();
    CHECK(bytes(*store, 1) == watching);
    REQUIRE(guest.ask(abi::XS_UNWATCH, strings({"w", "token"})) == ok);
    CHECK(bytes(*store, 1) == base);
    CHECK(store->check_invariants());

    const std::uint32_t tx = start(guest);
    CHECK(bytes(*store, 1) > base);
    REQUIRE(guest.write("t/u", "v", tx) == ok);
    CHECK(store->check_invariants());
    REQUIRE(guest.ask(abi::XS_TRANSACTION_END, strings({"F"}), tx) == ok);
    CHECK(bytes(*store, 1) == base);
    CHECK(store->check_invariants());

    // Released with a node, a watch and a transaction: introduced again, it is charged for its new
    // home only, as a domain never seen.
    REQUIRE(guest.write("kept", "v") == ok);
    REQUIRE(guest.ask(abi::XS_WATCH, strings({"kept", "t"})) == ok);
    start(guest);
    guest.take_events();
    REQUIRE(store->release(DomId{1}));
    CHECK(bytes(*store, 1) == 0);
    CHECK(guest.take_events().size() == 1);  // "kept" went with the home
    CHECK(store->check_invariants());
    REQUIRE(store->introduce(DomId{1}));
    REQUIRE(store->introduce(DomId{3}));
    CHECK(bytes(*store, 1) == bytes(*store, 3));
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a transaction's copies are charged to its domain until it ends",
                 "[xenstore]") {
    Client& guest = connect(1);
    // Domain 2 lets domain 1 write one of its nodes.
    REQUIRE(store->write("/local/domain/2/shared", ""));
    const Permission perms[] = {{DomId{2}, Access::none}, {DomId{1}, Access::both}};
    REQUIRE(store->set_perms("/local/domain/2/shared", perms));
    const std::uint64_t base1 = bytes(*store, 1), base2 = bytes(*store, 2);

    SECTION("aborted: every copy goes back") {
        const std::uint32_t tx = start(guest);
        REQUIRE(guest.write("/local/domain/2/shared", big, tx) == ok);
        CHECK(bytes(*store, 1) > base1 + 2048);  // the copy of domain 2's node is domain 1's
        CHECK(bytes(*store, 2) == base2);
        CHECK(store->check_invariants());
        REQUIRE(guest.ask(abi::XS_TRANSACTION_END, strings({"F"}), tx) == ok);
        CHECK(bytes(*store, 1) == base1);
        CHECK(bytes(*store, 2) == base2);
    }
    SECTION("committed: the copies become their owners', as a change outside would") {
        const std::uint32_t tx = start(guest);
        REQUIRE(guest.write("/local/domain/2/shared", big, tx) == ok);
        REQUIRE(guest.write("mine", "v", tx) == ok);
        REQUIRE(guest.ask(abi::XS_TRANSACTION_END, strings({"T"}), tx) == ok);
        CHECK(store->check_invariants());
        const std::uint64_t after1 = bytes(*store, 1), after2 = bytes(*store, 2);
        CHECK(after2 >= base2 + 2048);
        CHECK(after1 > base1);
        // The same changes outside a transaction charge the same.
        REQUIRE(store->write("/local/domain/2/shared", ""));
        REQUIRE(guest.ask(abi::XS_RM, strings({"mine"})) == ok);
        CHECK(bytes(*store, 1) == base1);
        CHECK(bytes(*store, 2) == base2);
        REQUIRE(guest.write("/local/domain/2/shared", big) == ok);
        REQUIRE(guest.write("mine", "v") == ok);
        CHECK(bytes(*store, 1) == after1);
        CHECK(bytes(*store, 2) == after2);
    }
    SECTION("a commit that would take the owner over its quota fails ENOSPC, changing nothing") {
        Client& owner = connect(2);
        const int written = fill_with_big_values(*this, owner);
        CHECK(written > 0);
        const std::uint32_t tx = start(guest);
        REQUIRE(guest.write("/local/domain/2/shared", big, tx) == ok);
        const std::uint64_t full2 = bytes(*store, 2);
        const std::uint64_t generation = store->generation();
        CHECK(guest.ask(abi::XS_TRANSACTION_END, strings({"T"}), tx) == "ENOSPC");
        CHECK(value("/local/domain/2/shared").empty());
        CHECK(bytes(*store, 2) == full2);
        CHECK(bytes(*store, 1) == base1);
        CHECK(store->generation() == generation);
        CHECK(guest.connection.transaction_count() == 0);
    }
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a refusal for the byte quota inside a transaction changes nothing",
                 "[xenstore][hostile]") {
    Client& guest = connect(1);
    const std::uint32_t tx = start(guest);
    const int written = fill_with_big_values(*this, guest, tx);
    CHECK(written >= 15);
    const State before = state(*this, guest, "big", tx);
    CHECK(guest.write("big/" + std::to_string(written), big, tx) == "ENOSPC");
    CHECK(state(*this, guest, "big", tx) == before);
    CHECK(guest.read("big/0") == "ENOENT");  // nothing committed
    REQUIRE(guest.ask(abi::XS_TRANSACTION_END, strings({"T"}), tx) == ok);
    CHECK(guest.read("big/0") == big);
    CHECK(bytes(*store, 1) <= store->limits().bytes_per_domain);
    CHECK(store->check_invariants());
}

TEST_CASE("xenstore: watches, transactions and events over the byte quota are refused or dropped",
          "[xenstore][hostile]") {
    // Measure a home and a watch, then give the domain exactly that much.
    std::uint64_t home = 0, watch = 0;
    {
        CountingMemory memory;
        Store store{memory};
        REQUIRE(store.introduce(DomId{1}));
        home = store.bytes_charged(DomId{1});
        Client guest{store, DomId{1}, false};
        REQUIRE(guest.ask(abi::XS_WATCH, strings({"w", "t"})) == ok);
        guest.take_events();
        watch = store.bytes_charged(DomId{1}) - home;
    }
    CountingMemory memory;
    Limits limits;
    limits.bytes_per_domain = static_cast<std::uint32_t>(home + watch);
    Store store{memory, limits};
    REQUIRE(store.introduce(DomId{1}));
    Client guest{store, DomId{1}, false};
    REQUIRE(guest.ask(abi::XS_WATCH, strings({"w", "t"})) == ok);
    CHECK(guest.take_events().empty());  // the watch's first event did not fit: dropped
    CHECK(guest.connection.dropped_events() == 1);
    CHECK(store.bytes_charged(DomId{1}) == limits.bytes_per_domain);
    CHECK(guest.ask(abi::XS_WATCH, strings({"v", "t"})) == "E2BIG");
    CHECK(guest.ask(abi::XS_TRANSACTION_START, strings({""})) == "ENOSPC");
    CHECK(guest.write("x", "") == "ENOSPC");
    CHECK(guest.connection.watch_count() == 1);
    CHECK(guest.connection.transaction_count() == 0);
    const std::uint64_t dropped = guest.connection.dropped_events();
    REQUIRE(store.write("/local/domain/1/w", "changed"));
    CHECK(guest.connection.dropped_events() == dropped + 1);
    CHECK(guest.take_events().empty());
    CHECK(store.bytes_charged(DomId{1}) > limits.bytes_per_domain);  // the toolstack's node: unlimited
    CHECK(store.check_invariants());
    // A privileged connection of the same domain is charged but not limited.
    Client privileged{store, DomId{1}, true};
    CHECK(privileged.ask(abi::XS_TRANSACTION_START, strings({""})) == strings({"1"}));
    CHECK(store.bytes_charged(DomId{1}) > limits.bytes_per_domain);
    CHECK(store.check_invariants());
}

TEST_CASE("xenstore: with power-of-two size classes a domain fits 15 values of 2 KiB in its 64 KiB",
          "[xenstore]") {
    CountingMemory memory;
    memory.power_of_two_classes = true;
    Store store{memory};
    REQUIRE(store.introduce(DomId{1}));
    CHECK(store.bytes_charged(DomId{1}) == 64);  // its home: one 64-byte block
    Client guest{store, DomId{1}, false};
    int written = 0;
    while (guest.write("big/" + std::to_string(written), big) == ok)
        REQUIRE(++written < 100);
    CHECK(written == 15);  // each node a 4 KiB block
    CHECK(store.bytes_charged(DomId{1}) <= 64 * 1024);
    CHECK(store.check_invariants());
}
