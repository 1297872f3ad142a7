// The xenstore client's test machine: libhv's real store, one page and Connection per guest, and a
// StoreChannel whose notify and wait let the server work the rings (unless told to hold), on a
// fake clock that a wait moves by a millisecond. A fake server for what the real one never sends
// lives in xenstore_hostile_test.cpp.
#pragma once

#include "../xenstore/xenstore_fixture.hpp"

#include <guest/xenstore.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace xenstore_client_test {

namespace abi = pvkit::abi;
using namespace pvkit::guest;
using xenstore_test::CountingMemory;

constexpr std::uint64_t millisecond = 1'000'000;

struct Machine;

class ServedChannel final : public StoreChannel {
public:
    explicit ServedChannel(Machine& machine) : machine_{machine} {}
    void notify() override;
    bool wait(std::uint64_t deadline) override;
    std::uint64_t now() override { return clock; }

    bool service_on_notify = true;  // false: the store runs only when the guest waits
    bool store_stopped = false;     // the store does not run at all: waits only pass time
    bool threaded = false;          // the guest runs on a thread of its own: an idle wait sleeps a little
    std::function<void()> before_service;  // runs once, before the next service (a toolstack write)
    std::uint64_t clock = 0;
    unsigned notifies = 0;
    unsigned waits = 0;
    bool runaway = false;  // a wait that would never end was cut short

private:
    Machine& machine_;
};

// One guest: its store page, the server's Connection to it, and the client under test.
struct Guest {
    Guest(Machine& machine, hv::xenstore::Store& store, std::uint16_t domain, bool privileged, std::uint32_t start)
        : page{make_page(start)},
          connection{store, hv::DomId{domain}, privileged, *page},
          channel{machine},
          client{*page, channel} {}

    static std::unique_ptr<abi::xenstore_domain_interface> make_page(std::uint32_t start) {
        auto page = std::make_unique<abi::xenstore_domain_interface>();
        page->req_cons = page->req_prod = page->rsp_cons = page->rsp_prod = start;
        return page;
    }

    std::unique_ptr<abi::xenstore_domain_interface> page;
    hv::xenstore::Connection connection;
    ServedChannel channel;
    XenstoreClient client;
};

// The store with domains 1 and 2 introduced; guests connect to it.
struct Machine {
    Machine() {
        REQUIRE(store.ready());
        REQUIRE(store.introduce(hv::DomId{1}));
        REQUIRE(store.introduce(hv::DomId{2}));
    }
    ~Machine() { guests.clear(); }

    Guest& connect(std::uint16_t domain, bool privileged = false, std::uint32_t start = 0) {
        guests.push_back(std::make_unique<Guest>(*this, store, domain, privileged, start));
        return *guests.back();
    }
    // Services every connection until none has anything to do (as the reference hypervisor does
    // after any request). Returns whether anything moved.
    bool service_all() {
        const std::lock_guard<std::recursive_mutex> hold{lock};
        bool moved = false;
        for (int pass = 0; pass < 64; ++pass) {
            bool busy = false;
            for (auto& guest : guests) {
                if (guest->channel.before_service) {
                    auto hook = std::move(guest->channel.before_service);
                    guest->channel.before_service = nullptr;
                    hook();
                }
                const hv::xenstore::ServiceResult result = guest->connection.service();
                busy = busy || result.consumed != 0 || result.produced != 0;
            }
            moved = moved || busy;
            if (!busy)
                break;
        }
        return moved;
    }
    std::string value(std::string_view path) {
        char buffer[8192];
        auto length = store.read(path, buffer);
        return length ? std::string(buffer, *length) : "<missing>";
    }

    std::recursive_mutex lock;  // for guests on threads (xenbus tests)
    CountingMemory memory;
    hv::xenstore::Store store{memory};
    std::vector<std::unique_ptr<Guest>> guests;  // destroyed before the store
};

inline void ServedChannel::notify() {
    ++notifies;
    if (service_on_notify && !store_stopped)
        machine_.service_all();
}

inline bool ServedChannel::wait(std::uint64_t deadline) {
    if (++waits > 100000) {
        runaway = true;
        return false;
    }
    if (!store_stopped && machine_.service_all())
        return true;
    // Nothing came: time passes until the deadline.
    if (clock >= deadline)
        return false;
    clock += millisecond;
    if (threaded)
        std::this_thread::sleep_for(std::chrono::microseconds(20));
    return true;
}

// The error of a result, XsErrc{} for success.
template <class T>
XsErrc error_of(const XsResult<T>& result) {
    return result.error();
}

inline std::string read_value(XenstoreClient& client, std::string_view path, XsTransaction tx = {}) {
    char buffer[4200];
    XsResult<std::size_t> length = client.read(path, buffer, tx);
    if (!length)
        return "<" + std::to_string(static_cast<int>(length.error())) + ">";
    return std::string(buffer, *length);
}

}  // namespace xenstore_client_test
