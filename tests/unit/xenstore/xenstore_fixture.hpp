// The xenstore's test machine: a StoreMemory that counts every block and can be told to fail, a
// guest that works its store page as a frontend (xenbus) does, and a store with domains 1 and 2
// introduced.
#pragma once

#include <catch2/catch.hpp>

#include <bit>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <hv/xenstore.hpp>

namespace xenstore_test {
namespace abi = pvkit::abi;
using hv::DomId;
using hv::Errc;
using namespace hv::xenstore;
using namespace std::string_literals;

constexpr std::uint32_t ring_size = abi::XENSTORE_RING_SIZE;

// Every block handed out is remembered with its size, so a release of a wrong block or size and a
// block never released are seen. fail_after = n: the next n allocations succeed, then all fail.
class CountingMemory final : public StoreMemory {
public:
    void* allocate(std::size_t bytes) override {
        if (fail_after == 0) {
            ++refused;
            return nullptr;
        }
        if (fail_after > 0)
            --fail_after;
        void* block = std::aligned_alloc(16, (bytes + 15) / 16 * 16);
        blocks[block] = bytes;
        ++allocations;
        return block;
    }
    void release(void* block, std::size_t bytes) override {
        const auto found = blocks.find(block);
        CHECK(found != blocks.end());
        if (found == blocks.end())
            return;
        CHECK(found->second == bytes);
        blocks.erase(found);
        std::free(block);
    }
    // As the reference hypervisor's arena rounds (power-of-two classes from 16 bytes) when asked.
    std::size_t block_size(std::size_t bytes) const override {
        return power_of_two_classes ? std::bit_ceil(bytes < 16 ? std::size_t{16} : bytes) : StoreMemory::block_size(bytes);
    }
    ~CountingMemory() {
        for (auto& [block, bytes] : blocks)
            std::free(block);
    }

    std::map<void*, std::size_t> blocks;
    long fail_after = -1;
    bool power_of_two_classes = false;
    long allocations = 0;
    long refused = 0;
};

struct Message {
    std::uint32_t type = 0;
    std::uint32_t req_id = 0;
    std::uint32_t tx_id = 0;
    std::string payload;
};

// NUL-terminated strings one after another, as requests carry them.
inline std::string strings(std::initializer_list<std::string_view> parts) {
    std::string joined;
    for (std::string_view part : parts) {
        joined += part;
        joined += '\0';
    }
    return joined;
}

inline std::string encode(std::uint32_t type, std::uint32_t req_id, std::uint32_t tx_id, std::string_view payload) {
    const abi::xsd_sockmsg header{type, req_id, tx_id, static_cast<std::uint32_t>(payload.size())};
    std::string bytes(reinterpret_cast<const char*>(&header), sizeof(header));
    bytes += payload;
    return bytes;
}

// The error of a failed Result, or Errc{} (no error) for a successful one.
template <class T>
Errc failure(const hv::Result<T>& result) {
    return result ? Errc{} : result.error();
}

// A domain's side of the page and its server.
struct Client {
    // `start`: where all four indexes begin, as a guest that used its ring before left them.
    Client(Store& store, DomId domain, bool privileged, std::uint32_t start = 0)
        : page{make_page(start)}, connection{store, domain, privileged, *page} {}

    static std::unique_ptr<abi::xenstore_domain_interface> make_page(std::uint32_t start) {
        auto made = std::make_unique<abi::xenstore_domain_interface>();
        made->req_cons = made->req_prod = made->rsp_cons = made->rsp_prod = start;
        return made;
    }

    // Puts bytes into req[] as a frontend does: when the ring is full, it waits for the server
    // (a service pass) and takes what came back meanwhile.
    void put(std::string_view bytes) {
        for (int stalls = 0; !bytes.empty();) {
            const std::uint32_t free = ring_size - (page->req_prod - page->req_cons);
            if (free == 0) {
                REQUIRE(++stalls < 64);
                (void)connection.service();
                take();
                continue;
            }
            const std::size_t count = bytes.size() < free ? bytes.size() : free;
            for (std::size_t i = 0; i < count; ++i)
                page->req[page->req_prod++ % ring_size] = bytes[i];
            bytes.remove_prefix(count);
        }
    }
    void send(std::uint32_t type, std::string_view payload, std::uint32_t tx_id = 0) {
        put(encode(type, ++last_req_id, tx_id, payload));
    }
    // Takes every byte out of rsp[] and every whole message out of what was taken: replies to
    // `replies`, events to `events`.
    void take() {
        while (page->rsp_cons != page->rsp_prod)
            received += page->rsp[page->rsp_cons++ % ring_size];
        for (;;) {
            abi::xsd_sockmsg header;
            if (received.size() < sizeof(header))
                return;
            std::memcpy(&header, received.data(), sizeof(header));
            if (received.size() < sizeof(header) + header.len)
                return;
            Message message{header.type, header.req_id, header.tx_id, received.substr(sizeof(header), header.len)};
            received.erase(0, sizeof(header) + header.len);
            (message.type == abi::XS_WATCH_EVENT ? events : replies).push_back(message);
        }
    }
    // Services the connection until nothing moves, taking output as a frontend does.
    void pump() {
        for (int pass = 0; pass < 64; ++pass) {
            const ServiceResult result = connection.service();
            take();
            if (!result.notify && !connection.pending_output())
                return;
        }
        FAIL("the connection kept working after 64 passes");
    }
    // One request and its reply.
    Message call(std::uint32_t type, std::string_view payload, std::uint32_t tx_id = 0) {
        send(type, payload, tx_id);
        pump();
        REQUIRE(replies.size() == 1);
        Message reply = replies.front();
        replies.clear();
        CHECK(reply.req_id == last_req_id);
        CHECK(reply.tx_id == tx_id);
        if (reply.type != abi::XS_ERROR)
            CHECK(reply.type == type);
        return reply;
    }
    // The payload of a successful reply, or the error name (as "EACCES") of a failed one.
    std::string ask(std::uint32_t type, std::string_view payload, std::uint32_t tx_id = 0) {
        const Message reply = call(type, payload, tx_id);
        if (reply.type == abi::XS_ERROR)
            return reply.payload.substr(0, reply.payload.size() - 1);
        return reply.payload;
    }
    std::string read(std::string_view path, std::uint32_t tx_id = 0) {
        return ask(abi::XS_READ, strings({path}), tx_id);
    }
    std::string write(std::string_view path, std::string_view value, std::uint32_t tx_id = 0) {
        return ask(abi::XS_WRITE, std::string(path) + '\0' + std::string(value), tx_id);
    }
    std::vector<std::pair<std::string, std::string>> take_events() {
        pump();
        std::vector<std::pair<std::string, std::string>> seen;
        for (const Message& event : events) {
            const std::size_t nul = event.payload.find('\0');
            seen.emplace_back(event.payload.substr(0, nul),
                              event.payload.substr(nul + 1, event.payload.size() - nul - 2));
        }
        events.clear();
        return seen;
    }

    std::unique_ptr<abi::xenstore_domain_interface> page;
    Connection connection;
    std::uint32_t last_req_id = 0;
    std::vector<Message> replies;
    std::vector<Message> events;
    std::string received;  // rsp bytes not yet a whole message
};

using Events = std::vector<std::pair<std::string, std::string>>;

struct StoreFixture {
    StoreFixture() {
        REQUIRE(store->ready());
        REQUIRE(store->introduce(DomId{1}));
        REQUIRE(store->introduce(DomId{2}));
    }
    Client& connect(std::uint16_t domain, bool privileged = false) {
        clients.push_back(std::make_unique<Client>(*store, DomId{domain}, privileged));
        return *clients.back();
    }
    std::string value(std::string_view path) {
        char buffer[8192];
        auto length = store->read(path, buffer);
        if (!length)
            return "<" + std::to_string(static_cast<int>(length.error())) + ">";
        return std::string(buffer, *length);
    }
    bool exists(std::string_view path) { return store->children(path).has_value(); }

    CountingMemory memory;
    std::optional<Store> store{std::in_place, memory};
    std::vector<std::unique_ptr<Client>> clients;  // destroyed before the store
};

}  // namespace xenstore_test
