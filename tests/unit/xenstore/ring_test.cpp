// The ring: requests split across passes, replies longer than the free space, several requests
// a pass, and hostile indexes and bytes.
#include "xenstore_fixture.hpp"

using namespace xenstore_test;

namespace {

std::vector<std::byte> bytes_of(const abi::xenstore_domain_interface& page) {
    const auto* raw = reinterpret_cast<const std::byte*>(&page);
    return {raw, raw + sizeof(page)};
}

}  // namespace

TEST_CASE_METHOD(StoreFixture, "xenstore: a request split byte by byte across passes is answered once whole",
                 "[xenstore]") {
    Client& dom0 = connect(0, true);
    const std::string request = encode(abi::XS_WRITE, 42, 0, "/split\0value"s);
    for (std::size_t i = 0; i + 1 < request.size(); ++i) {
        dom0.put(request.substr(i, 1));
        const ServiceResult result = dom0.connection.service();
        CHECK(result.consumed == 1);
        CHECK(result.requests == 0);
        CHECK(result.produced == 0);
    }
    dom0.put(request.substr(request.size() - 1));
    const ServiceResult result = dom0.connection.service();
    CHECK(result.requests == 1);
    CHECK(result.notify);
    dom0.take();
    REQUIRE(dom0.replies.size() == 1);
    CHECK(dom0.replies[0].req_id == 42);
    CHECK(dom0.replies[0].payload == strings({"OK"}));
    CHECK(value("/split") == "value");
}

TEST_CASE_METHOD(StoreFixture, "xenstore: two requests in one pass get two replies in order", "[xenstore]") {
    Client& dom0 = connect(0, true);
    dom0.put(encode(abi::XS_WRITE, 1, 0, "/x\0one"s) + encode(abi::XS_READ, 2, 0, strings({"/x"})));
    const ServiceResult result = dom0.connection.service();
    CHECK(result.requests == 2);
    dom0.take();
    REQUIRE(dom0.replies.size() == 2);
    CHECK(dom0.replies[0].req_id == 1);
    CHECK(dom0.replies[1].req_id == 2);
    CHECK(dom0.replies[1].payload == "one");
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a reply larger than the free rsp space continues on later passes",
                 "[xenstore]") {
    Client& dom0 = connect(0, true);
    const std::string big(3000, 'v');
    REQUIRE(store->write("/big", big));
    dom0.send(abi::XS_READ, strings({"/big"}));
    ServiceResult result = dom0.connection.service();
    CHECK(result.produced == ring_size);
    CHECK(dom0.connection.pending_output());
    // The guest reads nothing yet: a pass has no room and moves nothing.
    result = dom0.connection.service();
    CHECK(result.produced == 0);
    CHECK_FALSE(result.notify);
    std::string received;
    for (int pass = 0; pass < 8 && received.size() < 16 + big.size(); ++pass) {
        while (dom0.page->rsp_cons != dom0.page->rsp_prod)
            received += dom0.page->rsp[dom0.page->rsp_cons++ % ring_size];
        (void)dom0.connection.service();
    }
    REQUIRE(received.size() == 16 + big.size());
    CHECK(received.substr(16) == big);
    CHECK_FALSE(dom0.connection.pending_output());
    // A request sent behind it is answered as usual.
    CHECK(dom0.read("/big").size() == big.size());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a req_prod beyond the ring breaks the connection, touching nothing",
                 "[xenstore][hostile]") {
    Client& guest = connect(1);
    guest.send(abi::XS_READ, strings({"x"}));
    guest.page->req_prod += ring_size;  // claims more than the ring holds
    const auto before = bytes_of(*guest.page);
    ServiceResult result = guest.connection.service();
    CHECK(result.broken);
    CHECK_FALSE(result.notify);
    CHECK((bytes_of(*guest.page) == before));
    guest.page->req_prod -= ring_size;  // too late: broken for good
    const auto restored = bytes_of(*guest.page);
    result = guest.connection.service();
    CHECK(result.broken);
    CHECK((bytes_of(*guest.page) == restored));
    CHECK(guest.connection.broken());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: an rsp_cons going backwards breaks the connection", "[xenstore][hostile]") {
    Client& guest = connect(1);
    CHECK(guest.read("x") == "ENOENT");
    guest.page->rsp_cons -= 2 * ring_size;
    guest.send(abi::XS_READ, strings({"x"}));
    const auto before = bytes_of(*guest.page);
    CHECK(guest.connection.service().broken);
    CHECK((bytes_of(*guest.page) == before));
}

TEST_CASE_METHOD(StoreFixture, "xenstore: indexes that wrap around 2^32 are fine", "[xenstore]") {
    clients.push_back(std::make_unique<Client>(*store, DomId{1}, false, 0xffffff00u));
    Client& guest = *clients.back();
    const std::string value(700, 'w');
    for (int i = 0; i < 3; ++i) {
        CHECK(guest.write("wrap", value) == strings({"OK"}));
        CHECK(guest.read("wrap") == value);
    }
    CHECK(guest.page->req_prod < 0x1000u);  // both rings went past 2^32
    CHECK(guest.page->rsp_prod < 0x1000u);
}

TEST_CASE_METHOD(StoreFixture, "xenstore: garbage gets error replies and the connection goes on", "[xenstore][hostile]") {
    Client& guest = connect(1);
    CHECK(guest.ask(999, "junk") == "EINVAL");
    CHECK(guest.ask(abi::XS_WATCH_EVENT, strings({"a", "b"})) == "EINVAL");
    CHECK(guest.ask(abi::XS_ERROR, "") == "EINVAL");
    CHECK(guest.ask(abi::XS_READ, "no-nul") == "EINVAL");
    CHECK(guest.ask(abi::XS_READ, "") == "EINVAL");
    CHECK(guest.ask(abi::XS_READ, "two\0strings\0"s) == "EINVAL");
    CHECK(guest.ask(abi::XS_WRITE, "no-nul-at-all") == "EINVAL");
    CHECK(guest.ask(abi::XS_WATCH, strings({"only-path"})) == "EINVAL");
    CHECK(guest.ask(abi::XS_GET_DOMAIN_PATH, "1") == "EINVAL");
    CHECK(guest.write("still", "works") == strings({"OK"}));
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a len over the payload maximum is EINVAL, its bytes dropped, then on",
                 "[xenstore][hostile]") {
    Client& guest = connect(1);
    const abi::xsd_sockmsg header{abi::XS_WRITE, 9, 0, abi::XENSTORE_PAYLOAD_MAX + 100};
    guest.put({reinterpret_cast<const char*>(&header), sizeof(header)});
    guest.pump();
    REQUIRE(guest.replies.size() == 1);
    CHECK(guest.replies[0].type == abi::XS_ERROR);
    CHECK(guest.replies[0].req_id == 9);
    CHECK(guest.replies[0].payload == strings({"EINVAL"}));
    guest.replies.clear();
    // The refused payload, in ring-sized pieces, is dropped.
    std::string payload(header.len, 'p');
    for (std::size_t at = 0; at < payload.size(); at += 512) {
        guest.put(std::string_view(payload).substr(at, 512));
        guest.pump();
    }
    CHECK(guest.replies.empty());
    CHECK(guest.write("after", "ok") == strings({"OK"}));
    CHECK(value("/local/domain/1/after") == "ok");
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a reply over the payload maximum is E2BIG", "[xenstore]") {
    Client& dom0 = connect(0, true);
    std::string name(200, 'n');
    for (char c = 'a'; c <= 'z'; ++c)
        REQUIRE(store->mkdir("/many/" + std::string(1, c) + name));
    CHECK(dom0.ask(abi::XS_DIRECTORY, strings({"/many"})) == "E2BIG");
    const std::string part = dom0.ask(abi::XS_DIRECTORY_PART, strings({"/many", "0"}));
    CHECK(part.size() <= abi::XENSTORE_PAYLOAD_MAX);
    CHECK(part.back() == '\0');
    CHECK(part.substr(part.size() - 2) != std::string(2, '\0'));  // not the end of the list yet
}
