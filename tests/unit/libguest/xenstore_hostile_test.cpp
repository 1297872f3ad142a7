// The xenstore client against a fake store that sends what the real one never does: indexes out of
// range, oversized headers, garbage replies and events, replies dripping in a byte at a time.
#include "xenstore_fixture.hpp"

using namespace xenstore_client_test;
using xenstore_test::encode;
using xenstore_test::strings;
using namespace std::string_literals;

namespace {

constexpr std::uint32_t ring_size = abi::XENSTORE_RING_SIZE;

// A store page and a scripted server: each whole request taken from req[] goes to `respond`, and
// what it answers is written into rsp[] as room allows (`drip`: one byte per notify or wait).
class FakeStore final : public StoreChannel {
public:
    explicit FakeStore(std::uint32_t start = 0) {
        page.req_cons = page.req_prod = page.rsp_cons = page.rsp_prod = start;
    }
    void notify() override { work(); }
    bool wait(std::uint64_t deadline) override {
        if (++waits > 10000)
            return false;
        if (work())
            return true;
        if (clock >= deadline)
            return false;
        clock += millisecond;
        return true;
    }
    // Time passes while the client works, too.
    std::uint64_t now() override { return clock += 100'000; }

    // Answers with `type` and `payload`, echoing the request's ids.
    void reply(const abi::xsd_sockmsg& request, std::uint32_t type, std::string_view payload) {
        pending += encode(type, request.req_id, request.tx_id, payload);
    }

    abi::xenstore_domain_interface page{};
    std::function<void(FakeStore&, const abi::xsd_sockmsg&, std::string_view)> respond;
    bool stopped = false;  // takes nothing from req[]
    bool drip = false;
    bool flood = false;    // a watch event more at every notify or wait
    std::string pending;   // bytes to write into rsp[]
    std::uint64_t clock = 0;
    unsigned waits = 0;
    unsigned requests = 0;

private:
    bool work() {
        bool moved = false;
        while (!stopped && page.req_cons != page.req_prod) {
            received += page.req[page.req_cons++ % ring_size];
            moved = true;
        }
        abi::xsd_sockmsg header;
        while (received.size() >= sizeof header) {
            std::memcpy(&header, received.data(), sizeof header);
            if (received.size() < sizeof header + header.len)
                break;
            const std::string payload = received.substr(sizeof header, header.len);
            received.erase(0, sizeof header + header.len);
            ++requests;
            if (respond)
                respond(*this, header, payload);
        }
        if (flood)
            pending += encode(abi::XS_WATCH_EVENT, 0, 0, strings({"flood", "t"}));
        std::size_t room = ring_size - (page.rsp_prod - page.rsp_cons);
        if (drip && room > 1)
            room = 1;
        const std::size_t count = pending.size() < room ? pending.size() : room;
        for (std::size_t i = 0; i < count; ++i)
            page.rsp[page.rsp_prod++ % ring_size] = pending[i];
        pending.erase(0, count);
        return moved || count != 0;
    }

    std::string received;  // req[] bytes not yet a whole request
};

// A server that answers every request as the real store would for a store holding /v = "value".
void well_behaved(FakeStore& store, const abi::xsd_sockmsg& request, std::string_view) {
    if (request.type == abi::XS_READ)
        store.reply(request, abi::XS_READ, "value");
    else
        store.reply(request, request.type, strings({"OK"}));
}

// A client on a fake store of its own.
struct FakeFixture {
    FakeStore store;
    XenstoreClient xs{store.page, store};
};

}  // namespace

TEST_CASE_METHOD(FakeFixture,
                 "libguest: xenstore an rsp_prod more than a ring ahead breaks the connection, nothing read",
                 "[libguest][xenstore][hostile]") {
    store.respond = [](FakeStore& fake, const abi::xsd_sockmsg&, std::string_view) {
        fake.page.rsp_prod += ring_size + 1;
    };
    char value[16];
    CHECK(error_of(xs.read("v", value)) == XsErrc::enotconn);
    CHECK(xs.broken() == XsBroken::response_indexes);
    CHECK(store.page.rsp_cons == 0);
    // Broken for good: nothing more is sent.
    const std::uint32_t req_prod = store.page.req_prod;
    store.page.rsp_prod = 0;
    CHECK(error_of(xs.write("v", "x")) == XsErrc::enotconn);
    CHECK(error_of(xs.next_event(value, 0)) == XsErrc::enotconn);
    CHECK(store.page.req_prod == req_prod);
}

TEST_CASE_METHOD(FakeFixture,
                 "libguest: xenstore a req_cons past req_prod breaks the connection before writing",
                 "[libguest][xenstore][hostile]") {
    store.page.req_cons = 100;  // the store claims to have consumed bytes never produced
    CHECK(error_of(xs.write("v", "x")) == XsErrc::enotconn);
    CHECK(xs.broken() == XsBroken::request_indexes);
    CHECK(store.page.req_prod == 0);
}

TEST_CASE_METHOD(FakeFixture,
                 "libguest: xenstore a header with len over 4096 breaks the connection",
                 "[libguest][xenstore][hostile]") {
    store.respond = [](FakeStore& fake, const abi::xsd_sockmsg& request, std::string_view) {
        const abi::xsd_sockmsg header{abi::XS_READ, request.req_id, 0, abi::XENSTORE_PAYLOAD_MAX + 1};
        fake.pending.append(reinterpret_cast<const char*>(&header), sizeof header);
        fake.pending.append(200, 'x');
    };
    char value[16];
    CHECK(error_of(xs.read("v", value)) == XsErrc::enotconn);
    CHECK(xs.broken() == XsBroken::oversized_message);
    // It stopped right after the header.
    CHECK(store.page.rsp_cons == 16);
}

TEST_CASE_METHOD(FakeFixture,
                 "libguest: xenstore a reply of the wrong type or transaction is EBADMSG and the connection goes on",
                 "[libguest][xenstore][hostile]") {
    int answer = 0;
    store.respond = [&](FakeStore& fake, const abi::xsd_sockmsg& request, std::string_view payload) {
        switch (answer++) {
        case 0: fake.reply(request, abi::XS_DIRECTORY, "value"); break;
        case 1: fake.pending += encode(abi::XS_READ, request.req_id, 77, "value"); break;
        case 2: fake.reply(request, abi::XS_WRITE, "NO"); break;
        case 3: fake.reply(request, abi::XS_WRITE, strings({"OK", "and more"})); break;
        default: well_behaved(fake, request, payload);
        }
    };
    char value[16];
    CHECK(error_of(xs.read("v", value)) == XsErrc::ebadmsg);
    CHECK(error_of(xs.read("v", value)) == XsErrc::ebadmsg);
    CHECK(error_of(xs.write("v", "x")) == XsErrc::ebadmsg);
    CHECK(error_of(xs.write("v", "x")) == XsErrc::ebadmsg);
    CHECK(xs.broken() == XsBroken::no);
    CHECK(read_value(xs, "v") == "value");
    CHECK(xs.write("v", "x"));
}

TEST_CASE_METHOD(FakeFixture,
                 "libguest: xenstore error replies: known names map to errno, unknown ones to EIO, garbage to EBADMSG",
                 "[libguest][xenstore][hostile]") {
    std::string error;
    store.respond = [&](FakeStore& fake, const abi::xsd_sockmsg& request, std::string_view) {
        fake.reply(request, abi::XS_ERROR, error);
    };
    char value[16];
    const std::pair<std::string, XsErrc> cases[] = {
        {strings({"EAGAIN"}), XsErrc::eagain},    {strings({"EACCES"}), XsErrc::eacces},
        {strings({"ENOTEMPTY"}), XsErrc::enotempty}, {strings({"EWHATEVER"}), XsErrc::eio},
        {"EAGAIN", XsErrc::ebadmsg},              {strings({"E", "X"}), XsErrc::ebadmsg},
        {"", XsErrc::ebadmsg},                    {strings({std::string(40, 'E')}), XsErrc::ebadmsg},
    };
    for (const auto& [name, expected] : cases) {
        error = name;
        CHECK(error_of(xs.read("v", value)) == expected);
    }
    CHECK(xs.broken() == XsBroken::no);
}

TEST_CASE_METHOD(FakeFixture,
                 "libguest: xenstore malformed payloads of directory, perms, transaction and domain path are EBADMSG",
                 "[libguest][xenstore][hostile]") {
    std::string payload;
    store.respond = [&](FakeStore& fake, const abi::xsd_sockmsg& request, std::string_view) {
        fake.reply(request, request.type, payload);
    };
    char buffer[64];
    payload = "a\0b"s;
    CHECK(error_of(xs.directory("d", buffer)) == XsErrc::ebadmsg);
    XsPermission perms[4];
    for (std::string bad : {"x5\0"s, "r\0"s, "r70000\0"s, "r1"s, "r01\0"s, ""s}) {
        payload = bad;
        CHECK(error_of(xs.get_perms("p", perms)) == XsErrc::ebadmsg);
    }
    for (std::string bad : {"abc\0"s, "0\0"s, "5"s, "99999999999\0"s, std::string(30, '1')}) {
        payload = bad;
        CHECK(error_of(xs.transaction_start()) == XsErrc::ebadmsg);
    }
    payload = "/local/domain/1";  // no NUL
    CHECK(error_of(xs.get_domain_path(1, buffer)) == XsErrc::ebadmsg);
    payload = strings({"7"});
    XsResult<XsTransaction> tx = xs.transaction_start();
    REQUIRE(tx);
    CHECK(tx->id == 7);
}

TEST_CASE_METHOD(FakeFixture,
                 "libguest: xenstore stale replies and malformed events are dropped, the awaited reply still found",
                 "[libguest][xenstore][hostile]") {
    store.respond = [](FakeStore& fake, const abi::xsd_sockmsg& request, std::string_view payload) {
        fake.pending += encode(abi::XS_READ, request.req_id + 1000, 0, "stale");
        fake.pending += encode(abi::XS_WATCH_EVENT, 0, 0, "only-one-nul\0"s);
        fake.pending += encode(abi::XS_WATCH_EVENT, 0, 0, strings({"three", "nuls", "here"}));
        fake.pending += encode(abi::XS_WATCH_EVENT, 0, 0, strings({"good/path", "tok"}));
        well_behaved(fake, request, payload);
    };
    CHECK(read_value(xs, "v") == "value");
    CHECK(xs.stale_replies() == 1);
    CHECK(xs.dropped_events() == 2);
    CHECK(xs.queued_events() == 1);
    char buffer[32];
    XsResult<XsWatchEvent> event = xs.next_event(buffer, 0);
    REQUIRE(event);
    CHECK(event->path == "good/path");
    CHECK(event->token == "tok");
}

TEST_CASE("libguest: xenstore a reply dripping in a byte at a time across the wrap is reassembled",
                 "[libguest][xenstore][hostile]") {
    FakeStore store{0xfffffff0u};
    XenstoreClient xs{store.page, store};
    store.drip = true;
    store.respond = [](FakeStore& fake, const abi::xsd_sockmsg& request, std::string_view) {
        fake.pending += encode(abi::XS_WATCH_EVENT, 0, 0, strings({"ev", "t"}));
        fake.reply(request, abi::XS_READ, std::string(1500, 'd'));
    };
    CHECK(read_value(xs, "v") == std::string(1500, 'd'));
    CHECK(xs.queued_events() == 1);
    CHECK(store.page.rsp_cons == store.page.rsp_prod);
    CHECK(store.page.rsp_prod < 0x1000u);
}

TEST_CASE_METHOD(FakeFixture,
                 "libguest: xenstore a request cut short by its deadline halfway into req[] breaks the connection",
                 "[libguest][xenstore][hostile]") {
    store.stopped = true;
    xs.set_timeout(5 * millisecond);
    CHECK(error_of(xs.write("v", std::string(2000, 'x'))) == XsErrc::etime);
    CHECK(xs.broken() == XsBroken::interrupted_request);
    CHECK(store.page.req_prod == ring_size);
    CHECK(error_of(xs.write("v", "x")) == XsErrc::enotconn);
    // A request that could not start at all is just ETIME.
    FakeStore full;
    full.stopped = true;
    full.page.req_prod = ring_size;  // someone filled req[] before us
    XenstoreClient late{full.page, full};
    late.set_timeout(2 * millisecond);
    CHECK(error_of(late.write("v", "x")) == XsErrc::etime);
    CHECK(late.broken() == XsBroken::no);
}

TEST_CASE_METHOD(FakeFixture,
                 "libguest: xenstore events filling the queue's storage exactly, then one more, are kept and dropped",
                 "[libguest][xenstore][hostile]") {
    // Records of 4 + 1020 bytes: four fill the 4096 bytes exactly.
    const std::string path(1017, 'p');
    store.respond = [&](FakeStore& fake, const abi::xsd_sockmsg& request, std::string_view payload) {
        for (int i = 0; i < 5; ++i)
            fake.pending += encode(abi::XS_WATCH_EVENT, 0, 0, strings({path, "t"}));
        well_behaved(fake, request, payload);
    };
    CHECK(read_value(xs, "v") == "value");
    CHECK(xs.queued_events() == 4);
    CHECK(xs.dropped_events() == 1);
    std::string buffer(1100, '\0');
    for (int i = 0; i < 4; ++i) {
        XsResult<XsWatchEvent> event = xs.next_event(buffer, 0);
        REQUIRE(event);
        CHECK(event->path == path);
    }
}

TEST_CASE_METHOD(FakeFixture,
                 "libguest: xenstore a store flooding events instead of replying cannot hold a request past its deadline",
                 "[libguest][xenstore][hostile]") {
    store.flood = true;
    xs.set_timeout(50 * millisecond);
    char value[8];
    CHECK(error_of(xs.read("v", value)) == XsErrc::etime);
    CHECK(xs.dropped_events() > 0);
    CHECK(xs.broken() == XsBroken::no);
    char buffer[32];
    CHECK(error_of(xs.next_event(buffer, store.clock + 10 * millisecond, "other")) == XsErrc::etime);
}
