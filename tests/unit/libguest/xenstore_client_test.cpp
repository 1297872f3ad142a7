// The xenstore client against libhv's store: the operations, their errors, permissions and
// transactions, end to end over a page in memory.
#include "xenstore_fixture.hpp"

#include <pvkit/xenstore.h>

using namespace xenstore_client_test;

TEST_CASE("libguest: xenstore write, read, mkdir, directory and rm go through the real store", "[libguest][xenstore]") {
    Machine machine;
    XenstoreClient& xs = machine.connect(1).client;
    CHECK(xs.write("data/greeting", "hello"));
    CHECK(machine.value("/local/domain/1/data/greeting") == "hello");
    CHECK(read_value(xs, "data/greeting") == "hello");
    CHECK(read_value(xs, "/local/domain/1/data/greeting") == "hello");
    CHECK(xs.mkdir("data/empty"));
    CHECK(read_value(xs, "data/empty").empty());

    char names[64];
    XsResult<XsNames> listed = xs.directory("data", names);
    REQUIRE(listed);
    CHECK(listed->count == 2);
    std::vector<std::string> seen;
    for (std::string_view name : *listed)
        seen.emplace_back(name);
    CHECK(seen == std::vector<std::string>{"empty", "greeting"});

    CHECK(xs.rm("data/greeting"));
    CHECK(error_of(xs.read("data/greeting", names)) == XsErrc::enoent);
    XsResult<XsNames> after = xs.directory("data", names);
    REQUIRE(after);
    CHECK(after->count == 1);
    CHECK(xs.directory("data/empty", names)->count == 0);
    CHECK(machine.store.check_invariants());
}

TEST_CASE("libguest: xenstore errors come back as Xen errno values", "[libguest][xenstore]") {
    Machine machine;
    XenstoreClient& xs = machine.connect(1).client;
    char value[16];
    CHECK(error_of(xs.read("missing", value)) == XsErrc::enoent);
    CHECK(xs.read("missing", value).xen_errno() == -2);
    CHECK(error_of(xs.read("/local/domain/2", value)) == XsErrc::eacces);
    CHECK(error_of(xs.write("/local/domain/2/x", "no")) == XsErrc::eacces);
    CHECK(error_of(xs.write("bad//path", "x")) == XsErrc::einval);
    CHECK(error_of(xs.rm("/")) == XsErrc::einval);
    CHECK(error_of(xs.watch("x", "t")) == XsErrc{});
    CHECK(error_of(xs.watch("x", "t")) == XsErrc::eexist);
    CHECK(error_of(xs.unwatch("y", "t")) == XsErrc::enoent);
    // Refused before anything is sent.
    const unsigned notifies = machine.guests[0]->channel.notifies;
    CHECK(error_of(xs.write(std::string_view{"a\0b", 3}, "x")) == XsErrc::einval);
    CHECK(error_of(xs.write("big", std::string(4096, 'x'))) == XsErrc::e2big);
    CHECK(error_of(xs.transaction_end({}, true)) == XsErrc::einval);
    CHECK(machine.guests[0]->channel.notifies == notifies);
    CHECK(xs.broken() == XsBroken::no);
}

TEST_CASE("libguest: xenstore read into a buffer too small is ERANGE and the next request works",
          "[libguest][xenstore]") {
    Machine machine;
    XenstoreClient& xs = machine.connect(1).client;
    REQUIRE(xs.write("v", "0123456789"));
    char small[10];
    CHECK(error_of(xs.read("v", small)) == XsErrc::erange);
    char exact[11];
    XsResult<std::size_t> length = xs.read("v", exact);
    REQUIRE(length);
    CHECK(*length == 10);
    CHECK(std::string(exact) == "0123456789");
    char names[3];
    REQUIRE(xs.write("d/abc", ""));
    CHECK(error_of(xs.directory("d", names)) == XsErrc::erange);
    CHECK(read_value(xs, "v") == "0123456789");
}

TEST_CASE("libguest: xenstore permissions are read and set as entries", "[libguest][xenstore]") {
    Machine machine;
    XenstoreClient& xs = machine.connect(1).client;
    REQUIRE(xs.write("shared", "x"));
    XsPermission perms[4];
    XsResult<std::size_t> count = xs.get_perms("shared", perms);
    REQUIRE(count);
    REQUIRE(*count == 1);
    CHECK(perms[0].domain == 1);
    CHECK(perms[0].access == XsAccess::none);

    const XsPermission wanted[] = {{1, XsAccess::none}, {2, XsAccess::read}, {0, XsAccess::both}};
    REQUIRE(xs.set_perms("shared", wanted));
    count = xs.get_perms("shared", perms);
    REQUIRE(count);
    REQUIRE(*count == 3);
    CHECK(perms[1].domain == 2);
    CHECK(perms[1].access == XsAccess::read);
    CHECK(perms[2].access == XsAccess::both);
    XsPermission one[1];
    CHECK(error_of(xs.get_perms("shared", one)) == XsErrc::erange);

    // Domain 2 may now read it, not write it.
    XenstoreClient& other = machine.connect(2).client;
    CHECK(read_value(other, "/local/domain/1/shared") == "x");
    CHECK(error_of(other.write("/local/domain/1/shared", "y")) == XsErrc::eacces);
    const XsPermission bad[] = {{1, static_cast<XsAccess>(9)}};
    CHECK(error_of(xs.set_perms("shared", bad)) == XsErrc::einval);
    CHECK(error_of(xs.set_perms("shared", {})) == XsErrc::einval);
}

TEST_CASE("libguest: xenstore get_domain_path names a domain's home", "[libguest][xenstore]") {
    Machine machine;
    XenstoreClient& xs = machine.connect(1).client;
    char path[32];
    XsResult<std::string_view> home = xs.get_domain_path(7, path);
    REQUIRE(home);
    CHECK(*home == "/local/domain/7");
    char tiny[8];
    CHECK(error_of(xs.get_domain_path(7, tiny)) == XsErrc::erange);
}

TEST_CASE("libguest: xenstore transactions see a snapshot, conflict with EAGAIN and succeed when retried",
          "[libguest][xenstore]") {
    Machine machine;
    XenstoreClient& xs = machine.connect(1).client;
    XenstoreClient& dom0 = machine.connect(0, true).client;
    REQUIRE(xs.write("counter", "1"));

    XsResult<XsTransaction> tx = xs.transaction_start();
    REQUIRE(tx);
    CHECK(tx->id != 0);
    CHECK(read_value(xs, "counter", *tx) == "1");
    REQUIRE(dom0.write("/local/domain/1/counter", "5"));  // someone else commits meanwhile
    CHECK(read_value(xs, "counter", *tx) == "1");         // the snapshot
    REQUIRE(xs.write("counter", "2", *tx));
    CHECK(error_of(xs.transaction_end(*tx, true)) == XsErrc::eagain);
    CHECK(machine.value("/local/domain/1/counter") == "5");
    // The transaction ended: its id is gone.
    char value[8];
    CHECK(error_of(xs.read("counter", value, *tx)) == XsErrc::enoent);

    // Retried, it reads the new value and commits.
    int attempts = 0;
    for (;;) {
        ++attempts;
        XsResult<XsTransaction> again = xs.transaction_start();
        REQUIRE(again);
        const int current = std::stoi(read_value(xs, "counter", *again));
        REQUIRE(xs.write("counter", std::to_string(current + 1), *again));
        XsResult<void> ended = xs.transaction_end(*again, true);
        if (ended)
            break;
        REQUIRE(ended.error() == XsErrc::eagain);
        REQUIRE(attempts < 3);
    }
    CHECK(attempts == 1);
    CHECK(machine.value("/local/domain/1/counter") == "6");

    // An abort leaves nothing behind.
    XsResult<XsTransaction> aborted = xs.transaction_start();
    REQUIRE(aborted);
    REQUIRE(xs.write("counter", "100", *aborted));
    CHECK(xs.transaction_end(*aborted, false));
    CHECK(machine.value("/local/domain/1/counter") == "6");
    CHECK(machine.guests[0]->connection.transaction_count() == 0);
}

namespace {
void c_notify(void* context) { static_cast<StoreChannel*>(context)->notify(); }
int c_wait(void* context, std::uint64_t deadline) { return static_cast<StoreChannel*>(context)->wait(deadline); }
std::uint64_t c_now(void* context) { return static_cast<StoreChannel*>(context)->now(); }
}  // namespace

TEST_CASE("libguest: the xenstore C API reads, writes, lists, sets perms and takes watch events",
          "[libguest][xenstore]") {
    Machine machine;
    Guest& guest = machine.connect(1);
    pvk_xs_channel channel{c_notify, c_wait, c_now, &guest.channel};
    // The C client gets the page too (the C++ client of the same guest stays idle).
    static pvk_xs_client xs;
    pvk_xs_init(&xs, reinterpret_cast<pvk_xenstore_domain_interface*>(guest.page.get()), &channel);
    CHECK(pvk_xs_write(&xs, 0, "c/key", "value") == 0);
    char value[16];
    std::size_t length = 0;
    CHECK(pvk_xs_read(&xs, 0, "c/key", value, sizeof value, &length) == 0);
    CHECK(length == 5);
    CHECK(std::string(value) == "value");
    CHECK(pvk_xs_read(&xs, 0, "c/none", value, sizeof value, &length) == -PVK_XEN_ENOENT);
    char names[32];
    std::size_t count = 0;
    CHECK(pvk_xs_directory(&xs, 0, "c", names, sizeof names, &count) == 0);
    CHECK(count == 1);
    CHECK(std::string(names) == "key");
    const pvk_xs_perm perms[] = {{1, PVK_XS_PERM_NONE}, {2, PVK_XS_PERM_READ}};
    CHECK(pvk_xs_set_perms(&xs, 0, "c/key", perms, 2) == 0);
    pvk_xs_perm got[4];
    CHECK(pvk_xs_get_perms(&xs, 0, "c/key", got, 4, &count) == 0);
    CHECK(count == 2);
    CHECK(got[1].domain == 2);
    CHECK(got[1].access == PVK_XS_PERM_READ);
    uint32_t tx = 0;
    CHECK(pvk_xs_transaction_start(&xs, &tx) == 0);
    CHECK(pvk_xs_write(&xs, tx, "c/key", "other") == 0);
    CHECK(pvk_xs_transaction_end(&xs, tx, 1) == 0);
    CHECK(machine.value("/local/domain/1/c/key") == "other");
    CHECK(pvk_xs_get_domain_path(&xs, 3, names, sizeof names) == 0);
    CHECK(std::string(names) == "/local/domain/3");
    CHECK(pvk_xs_watch(&xs, "c/key", "tok") == 0);
    char event[64];
    const char* path = nullptr;
    const char* token = nullptr;
    CHECK(pvk_xs_next_event(&xs, event, sizeof event, 0, "tok", &path, &token) == 0);
    CHECK(std::string(path) == "c/key");
    CHECK(std::string(token) == "tok");
    CHECK(pvk_xs_next_event(&xs, event, sizeof event, 0, nullptr, &path, &token) == -PVK_XEN_ETIME);
    CHECK(pvk_xs_unwatch(&xs, "c/key", "tok") == 0);
    CHECK(pvk_xs_write(&xs, 0, "c/number", "51712") == 0);
    std::uint64_t number = 0;
    CHECK(pvk_xenbus_read_number(&xs, "c", "number", 50000, &number) == -PVK_XEN_EBADMSG);  // over max
    CHECK(pvk_xenbus_read_number(&xs, "c", "number", 0xffffffff, &number) == 0);
    CHECK(number == 51712);
    CHECK(pvk_xenbus_read_number(&xs, "c", "key", 0xffffffff, &number) == -PVK_XEN_EBADMSG);  // "other"
    CHECK(pvk_xs_write(&xs, 0, "c/state", "6") == 0);  // Closed
    uint32_t state = 0;
    CHECK(pvk_xenbus_wait_while_closed(&xs, "c", c_now(&guest.channel) + 5 * millisecond, &state) == -PVK_XEN_ETIME);
    CHECK(pvk_xs_write(&xs, 0, "c/state", "2") == 0);
    CHECK(pvk_xenbus_wait_while_closed(&xs, "c", c_now(&guest.channel) + 5 * millisecond, &state) == 0);
    CHECK(state == PVK_XENBUS_INIT_WAIT);
    CHECK(pvk_xs_rm(&xs, 0, "c") == 0);
    CHECK(pvk_xs_broken(&xs) == 0);
}
