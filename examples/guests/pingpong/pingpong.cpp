// pingpong: two domains that find each other through the xenstore and exchange messages over a
// shared ring, the way Xen's split drivers talk. One image, two roles (its command line says
// which): `ping`, the front end, grants a ring page and offers an event channel; `pong`, the
// back end, maps the ring and answers every request. ping then measures the round trip of one
// message at a time, and the throughput of a full ring in flight.
//
// Command line: `role=ping|pong peer=<domid> [messages=<n>]`. The xenstore keys, under ping's
// home (readable by pong): data/pingpong/ring-ref, data/pingpong/event-channel, written in one
// transaction; pong answers under its own home: data/pingpong/connected. ping's data/pingpong/done
// ends the exchange: pong unmaps the ring, and ping ends its grant.
#include <guest/console.hpp>
#include <guest/evtchn.hpp>
#include <guest/frames.hpp>
#include <guest/grants.hpp>
#include <guest/ring.hpp>
#include <guest/start.hpp>
#include <guest/time.hpp>
#include <guest/xenstore.hpp>
#include <pvkit/console.h>
#include <pvkit/format.h>

#include <charconv>
#include <string_view>

namespace {

namespace guest = pvkit::guest;
namespace abi = pvkit::abi;

struct Request {
    std::uint64_t id;
    std::uint64_t value;
};
struct Response {
    std::uint64_t id;
    std::uint64_t value;  // the request's value + 1
};
using Ring = guest::SharedRing<Request, Response>;

constexpr std::uint64_t second = 1'000'000'000;

struct Options {
    std::string_view role;
    abi::domid_t peer = 0;
    std::uint64_t messages = 1000;
};

// `key=value` words of the command line. (string_view's find and substr would need memchr and
// exceptions, which a freestanding guest has not: the words are cut by hand.)
Options read_options(const abi::start_info& info) {
    const auto* text = reinterpret_cast<const char*>(info.cmd_line);
    Options options;
    std::size_t at = 0;
    while (at < sizeof info.cmd_line && text[at] != '\0') {
        std::size_t equals = 0, end = at;
        for (; end < sizeof info.cmd_line && text[end] != '\0' && text[end] != ' '; ++end)
            if (text[end] == '=' && equals == 0)
                equals = end;
        if (equals != 0) {
            const std::string_view key{text + at, equals - at}, value{text + equals + 1, end - equals - 1};
            std::uint64_t number = 0;
            const bool numeric =
                !value.empty() && std::from_chars(value.data(), value.data() + value.size(), number).ec == std::errc{};
            if (key == "role")
                options.role = value;
            else if (key == "peer" && numeric)
                options.peer = static_cast<abi::domid_t>(number);
            else if (key == "messages" && numeric && number > 0)
                options.messages = number;
        }
        at = end + (end < sizeof info.cmd_line && text[end] == ' ' ? 1 : 0);
    }
    return options;
}

// "/local/domain/<domain>/data/pingpong/<key>" in `buffer` (the directory itself for no key).
std::string_view key_path(std::span<char> buffer, abi::domid_t domain, std::string_view key) {
    const int length = pvk_snprintf(buffer.data(), buffer.size(), "/local/domain/%u/data/pingpong%s%.*s",
                                    static_cast<unsigned>(domain), key.empty() ? "" : "/",
                                    static_cast<int>(key.size()), key.data());
    return {buffer.data(), length > 0 ? static_cast<std::size_t>(length) : 0};
}

// data/pingpong under `self`'s home, readable by `peer`: the keys written in it inherit that.
bool share_directory(guest::XenstoreClient& store, abi::domid_t self, abi::domid_t peer, guest::XsTransaction tx = {}) {
    char path[80];
    const std::string_view directory = key_path(path, self, "");
    const guest::XsPermission perms[] = {{self, guest::XsAccess::none}, {peer, guest::XsAccess::read}};
    return store.mkdir(directory, tx) && store.set_perms(directory, perms, tx);
}

bool fail(const char* what) {
    pvk_printf("pingpong: FAIL %s\n", what);
    return false;
}

// Waits until `path` exists (a watch: no polling of the store), reading it into `value`.
bool wait_for_key(guest::XenstoreClient& store, std::string_view path, std::span<char> value, std::uint64_t deadline) {
    if (!store.watch(path, "pingpong"))
        return false;
    for (;;) {
        if (const auto read = store.read(path, value); read) {
            (void)store.unwatch(path, "pingpong");
            value[std::min(*read, value.size() - 1)] = '\0';
            return true;
        }
        char event[96];
        if (!store.next_event(event, deadline, "pingpong"))  // taken off the queue: look again
            return false;
    }
}

std::uint64_t number_in(std::span<const char> text) {
    std::uint64_t number = 0;
    std::size_t length = 0;
    while (length < text.size() && text[length] != '\0')
        ++length;
    std::from_chars(text.data(), text.data() + length, number);
    return number;
}

// ---- ping: the front end ----

bool run_ping(const Options& options, guest::XenstoreClient& store, abi::domid_t self) {
    const guest::Page page = guest::allocate_page();
    guest::GrantTable* grants = guest::grant_table();
    if (page.address == nullptr || grants == nullptr)
        return fail("a page for the ring and the grant table");
    auto& shared = *static_cast<Ring*>(page.address);
    auto ring = guest::FrontRing<Ring>::init(shared);
    const guest::GrantResult granted = grants->grant_access(options.peer, page.mfn, false);
    const long port = guest::alloc_unbound(options.peer);
    if (!granted || port <= 0)
        return fail("the ring page granted and a port offered");

    // Both keys in one transaction, under a directory readable by pong (the keys inherit that).
    char path[80], value[24];
    for (;;) {
        const auto tx = store.transaction_start();
        if (!tx)
            return fail("a transaction started");
        bool written = share_directory(store, self, options.peer, *tx);
        pvk_snprintf(value, sizeof value, "%u", granted.ref);
        written = written && store.write(key_path(path, self, "ring-ref"), value, *tx);
        pvk_snprintf(value, sizeof value, "%ld", port);
        written = written && store.write(key_path(path, self, "event-channel"), value, *tx);
        const auto committed = store.transaction_end(*tx, written);
        if (!written)
            return fail("the ring's keys written");
        if (committed)
            break;
        if (committed.error() != guest::XsErrc::eagain)
            return fail("the transaction committed");
    }
    pvk_printf("pingpong: ping offered ring-ref %u and port %ld to domain %u\n", granted.ref, port, options.peer);

    char answer[8];
    if (!wait_for_key(store, key_path(path, options.peer, "connected"), answer, guest::monotonic_ns() + 10 * second))
        return fail("pong connected");
    const auto event_port = static_cast<guest::EventPort>(port);

    // Latency: one message at a time.
    std::uint64_t errors = 0;
    const std::uint64_t start = guest::monotonic_ns();
    for (std::uint64_t id = 0; id < options.messages; ++id) {
        (void)ring.queue_request({id, id * 3});
        if (ring.push_requests_and_check_notify())
            (void)guest::notify(event_port);
        Response response{};
        for (guest::RingTake take; (take = ring.take_response(response)) != guest::RingTake::taken;) {
            if (take == guest::RingTake::producer_overflow)
                return fail("pong's ring indexes make sense");
            // Asks for an event at the next response before sleeping (RING_FINAL_CHECK_FOR_RESPONSES).
            if (!ring.final_check_for_responses() && !guest::wait(event_port, guest::monotonic_ns() + second))
                return fail("a response within a second");
        }
        errors += response.id != id || response.value != id * 3 + 1;
    }
    const std::uint64_t latency_ns = guest::monotonic_ns() - start;

    // Throughput: the ring kept full.
    const std::uint64_t total = options.messages * 10;
    std::uint64_t sent = 0, received = 0;
    const std::uint64_t burst_start = guest::monotonic_ns();
    while (received < total) {
        while (sent < total && ring.queue_request({sent, sent}))
            ++sent;
        if (ring.push_requests_and_check_notify())
            (void)guest::notify(event_port);
        Response response{};
        bool took = false;
        guest::RingTake take;
        while ((take = ring.take_response(response)) == guest::RingTake::taken) {
            errors += response.id != received || response.value != received + 1;
            ++received;
            took = true;
        }
        if (take == guest::RingTake::producer_overflow)
            return fail("pong's ring indexes make sense");
        if (!took && !ring.final_check_for_responses() && !guest::wait(event_port, guest::monotonic_ns() + second))
            return fail("responses keep coming");
    }
    const std::uint64_t burst_ns = guest::monotonic_ns() - burst_start;

    pvk_printf("pingpong: %lu round trips, mean %lu ns\n", static_cast<unsigned long>(options.messages),
               static_cast<unsigned long>(latency_ns / options.messages));
    pvk_printf("pingpong: %lu messages with a ring of %u in flight: %lu messages/s\n", static_cast<unsigned long>(total),
               static_cast<unsigned>(Ring::size), static_cast<unsigned long>(total * second / (burst_ns + 1)));
    if (errors != 0)
        return fail("every response answered its request");

    // Done: pong unmaps the ring (or goes away, which unmaps it too), then the grant can end.
    (void)store.write(key_path(path, self, "done"), "1");
    const std::uint64_t deadline = guest::monotonic_ns() + 10 * second;
    guest::GrantError ended;
    while ((ended = grants->end_access(granted.ref)) == guest::GrantError::in_use && guest::monotonic_ns() < deadline)
        guest::sleep_ns(second / 1000);
    if (ended != guest::GrantError::none)
        return fail("the grant ended once pong unmapped the ring");
    pvk_printf("pingpong: ping done\n");
    return true;
}

// ---- pong: the back end ----

bool run_pong(const Options& options, guest::XenstoreClient& store, abi::domid_t self) {
    char path[80], ring_ref[24], remote_port[24], done[8];
    const std::uint64_t deadline = guest::monotonic_ns() + 10 * second;
    if (!wait_for_key(store, key_path(path, options.peer, "event-channel"), remote_port, deadline) ||
        !store.read(key_path(path, options.peer, "ring-ref"), ring_ref))
        return fail("ping's offer found in the xenstore");
    const guest::ForeignMapping mapping =
        guest::map_foreign_grant(options.peer, static_cast<guest::GrantRef>(number_in(ring_ref)), false);
    const long port = guest::bind_interdomain(options.peer, static_cast<guest::EventPort>(number_in(remote_port)));
    if (mapping.address == nullptr || port <= 0)
        return fail("ping's ring mapped and its port bound");
    const auto event_port = static_cast<guest::EventPort>(port);
    (void)guest::wait(event_port, 1);  // bind_interdomain leaves the new port pending, as on Xen
    guest::BackRing<Ring> ring{*static_cast<Ring*>(mapping.address)};
    if (!share_directory(store, self, options.peer) || !store.write(key_path(path, self, "connected"), "1"))
        return fail("connected written");
    pvk_printf("pingpong: pong connected to domain %u\n", options.peer);

    std::uint64_t answered = 0;
    while (!store.read(key_path(path, options.peer, "done"), done)) {
        Request request{};
        bool took = false;
        guest::RingTake take;
        while ((take = ring.take_request(request)) == guest::RingTake::taken) {
            (void)ring.queue_response({request.id, request.value + 1});
            ++answered;
            took = true;
        }
        if (take == guest::RingTake::producer_overflow)
            return fail("ping's ring indexes make sense");
        if (took && ring.push_responses_and_check_notify())
            (void)guest::notify(event_port);
        if (!took && !ring.final_check_for_requests())
            (void)guest::wait(event_port, guest::monotonic_ns() + second / 10);
    }
    if (guest::unmap_foreign_grant(mapping) != 0)
        return fail("the ring unmapped");
    pvk_printf("pingpong: pong answered %lu messages\n", static_cast<unsigned long>(answered));
    return true;
}

}  // namespace

int pvkit::guest::guest_main(const abi::start_info& info) {
    if (!guest::setup() || pvk_console_init() != 0)
        return 1;
    const Options options = read_options(info);
    guest::XenstoreClient* store = guest::xenstore();
    char domid[8];
    const auto read = store != nullptr ? store->read("domid", domid) : guest::XsResult<std::size_t>{guest::XsErrc::eio};
    if (!read || options.peer == 0 || (options.role != "ping" && options.role != "pong")) {
        pvk_printf("pingpong: needs the xenstore and a command line `role=ping|pong peer=<domid>`\n");
        return 1;
    }
    const auto self = static_cast<abi::domid_t>(number_in({domid, *read}));
    const bool passed = options.role == "ping" ? run_ping(options, *store, self) : run_pong(options, *store, self);
    (void)pvk_console_flush(guest::monotonic_ns() + second);
    return passed ? 0 : 1;
}
