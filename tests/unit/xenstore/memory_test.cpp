// Memory: every block comes from the StoreMemory and goes back to it; an allocation that fails
// is ENOMEM with nothing changed, at whatever point of an operation it fails.
#include "xenstore_fixture.hpp"

using namespace xenstore_test;

namespace {

// The store's state as the tests see it: every path with its value and perms, by a walk through
// the toolstack API over the names a test uses.
std::string snapshot(Store& store, const std::vector<std::string_view>& paths) {
    std::string seen;
    for (std::string_view path : paths) {
        char value[256];
        std::array<Permission, 8> perms;
        auto length = store.read(path, value);
        auto count = store.get_perms(path, perms);
        seen += std::string(path) + "=";
        seen += length ? std::string(value, *length) : "<missing>";
        if (count)
            for (std::size_t i = 0; i < *count; ++i)
                seen += "," + std::to_string(perms[i].domain.value) + ":" +
                        std::to_string(static_cast<int>(perms[i].access));
        seen += ";";
    }
    return seen + std::to_string(store.generation());
}

}  // namespace

TEST_CASE("xenstore: everything allocated is released when the store and its connections go", "[xenstore]") {
    CountingMemory memory;
    {
        Store store{memory};
        REQUIRE(store.introduce(DomId{1}));
        Client guest{store, DomId{1}, false};
        Client dom0{store, DomId{0}, true};
        REQUIRE(dom0.ask(abi::XS_WATCH, strings({"/", "all"})) == strings({"OK"}));
        REQUIRE(guest.ask(abi::XS_WATCH, strings({"x", "mine"})) == strings({"OK"}));
        REQUIRE(guest.write("x/y", "1") == strings({"OK"}));
        REQUIRE(guest.ask(abi::XS_TRANSACTION_START, strings({""})) == strings({"1"}));
        REQUIRE(guest.write("x/z", "2", 1) == strings({"OK"}));
        REQUIRE(store.write("/local/domain/1/x/q", "3"));  // events queued, never taken
        CHECK(dom0.connection.pending_output());
        CHECK(memory.blocks.size() > 10);
        CHECK(store.check_invariants());
    }
    CHECK(memory.blocks.empty());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a write that runs out of memory at any step changes nothing",
                 "[xenstore]") {
    REQUIRE(store->write("/a/b", "old"));
    Client& guest = connect(1);
    const std::vector<std::string_view> paths = {"/a", "/a/b", "/a/b/c/d", "/local/domain/1/n/m", "/local/domain/1"};
    for (long budget = 0;; ++budget) {
        INFO("allocations allowed: " << budget);
        const std::string before = snapshot(*store, paths);
        const std::size_t blocks = memory.blocks.size();
        const std::uint32_t owned = store->nodes_owned(DomId{1});
        const std::uint64_t charged = store->bytes_charged(DomId{1});
        memory.fail_after = budget;
        const bool ok = store->write("/a/b/c/d", "new").has_value();
        memory.fail_after = -1;
        if (ok) {
            CHECK(budget >= 4);  // at least the two new nodes and the path above
            CHECK(value("/a/b/c/d") == "new");
            break;
        }
        CHECK(snapshot(*store, paths) == before);
        CHECK(memory.blocks.size() == blocks);
        CHECK(store->nodes_owned(DomId{1}) == owned);
        CHECK(store->bytes_charged(DomId{1}) == charged);
        CHECK(store->check_invariants());
    }
    // The same through the wire, in a transaction and out of one.
    for (const bool in_transaction : {false, true}) {
        for (long budget = 0;; ++budget) {
            INFO("transaction " << in_transaction << ", allocations allowed: " << budget);
            std::uint32_t tx = 0;
            if (in_transaction) {
                const std::string id = guest.ask(abi::XS_TRANSACTION_START, strings({""}));
                REQUIRE(id.back() == '\0');
                tx = static_cast<std::uint32_t>(std::stoul(id));
            }
            const std::string before = snapshot(*store, paths);
            const std::size_t blocks = memory.blocks.size();
            const std::uint64_t charged = store->bytes_charged(DomId{1});
            memory.fail_after = budget;
            guest.send(abi::XS_WRITE, "n/m\0v"s, tx);
            (void)guest.connection.service();
            memory.fail_after = -1;
            guest.pump();
            REQUIRE(guest.replies.size() == 1);
            const std::string reply = guest.replies[0].payload;
            guest.replies.clear();
            if (reply == strings({"ENOMEM"})) {
                CHECK(snapshot(*store, paths) == before);
                CHECK(memory.blocks.size() == blocks);
                CHECK(store->bytes_charged(DomId{1}) == charged);
                CHECK(store->check_invariants());
                if (tx != 0)
                    REQUIRE(guest.ask(abi::XS_TRANSACTION_END, strings({"F"}), tx) == strings({"OK"}));
                continue;
            }
            REQUIRE(reply == strings({"OK"}));
            if (tx != 0)
                REQUIRE(guest.ask(abi::XS_TRANSACTION_END, strings({"T"}), tx) == strings({"OK"}));
            CHECK(value("/local/domain/1/n/m") == "v");
            REQUIRE(guest.ask(abi::XS_RM, strings({"n"})) == strings({"OK"}));
            break;
        }
    }
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: rm, set_perms, introduce and watch out of memory change nothing",
                 "[xenstore]") {
    REQUIRE(store->write("/r/s/t", "1"));
    const std::vector<std::string_view> paths = {"/r", "/r/s", "/r/s/t", "/local/domain/9"};
    const std::string before = snapshot(*store, paths);
    const std::size_t blocks = memory.blocks.size();
    memory.fail_after = 0;
    CHECK(failure(store->rm("/r/s")) == Errc::enomem);
    const Permission open{DomId{0}, Access::both};
    CHECK(failure(store->set_perms("/r/s/t", {&open, 1})) == Errc::enomem);
    CHECK(failure(store->introduce(DomId{9})) == Errc::enomem);
    CHECK_FALSE(store->introduced(DomId{9}));
    memory.fail_after = 2;  // the home's record and one node: not enough
    CHECK(failure(store->introduce(DomId{9})) == Errc::enomem);
    CHECK_FALSE(store->introduced(DomId{9}));
    memory.fail_after = -1;
    CHECK(snapshot(*store, paths) == before);
    CHECK(memory.blocks.size() == blocks);
    Client& dom0 = connect(0, true);
    memory.fail_after = 0;
    CHECK(dom0.ask(abi::XS_WATCH, strings({"/r", "t"})) == "ENOMEM");
    CHECK(dom0.ask(abi::XS_TRANSACTION_START, strings({""})) == "ENOMEM");
    memory.fail_after = -1;
    CHECK(dom0.connection.watch_count() == 0);
    CHECK(dom0.connection.transaction_count() == 0);
    CHECK(store->check_invariants());
}

TEST_CASE("xenstore: a store whose root cannot be allocated refuses everything with ENOMEM", "[xenstore]") {
    CountingMemory memory;
    memory.fail_after = 0;
    Store store{memory};
    memory.fail_after = -1;
    CHECK_FALSE(store.ready());
    CHECK(failure(store.write("/a", "b")) == Errc::enomem);
    CHECK(failure(store.introduce(DomId{1})) == Errc::enomem);
    CHECK(store.check_invariants());
}
