// A guest image that links every host-testable part of libguest into one freestanding kernel, so
// the images build proves they need no libc, exceptions or RTTI; run, it exercises each once over
// memory of its own (not yet the start of day's free pfns) and reports like the boot-test guests.
#include <guest/events.hpp>
#include <guest/heap.hpp>
#include <guest/pages.hpp>
#include <guest/ring.hpp>
#include <pvkit/format.h>
#include <pvkit/guest.h>
#include <pvkit/heap.h>
#include <pvkit/xenstore.h>

namespace {
using namespace pvkit::guest;

int failures = 0;
int checks = 0;

void print(char* text) {
    std::uint32_t length = 0;
    while (text[length] != '\0')
        ++length;
    pvk_consoleio_write(length, text);
}

void check(bool holds, const char* name) {
    char line[128];
    ++checks;
    failures += holds ? 0 : 1;
    pvk_snprintf(line, sizeof line, "%s %s\n", holds ? "PASS" : "FAIL", name);
    print(line);
}

constexpr std::size_t arena_pages = 16;
alignas(4096) unsigned char arena[arena_pages * 4096];
void* map_arena_page(Pfn pfn, void*) { return arena + (pfn.value - reinterpret_cast<std::uintptr_t>(arena) / 4096) * 4096; }

struct Request {
    std::uint32_t id;
};
struct Response {
    std::int32_t status;
};
alignas(4096) SharedRing<Request, Response> ring_page;

void count_event(EventPort, void* context) { ++*static_cast<int*>(context); }

// The store's channel as the boot guests use it until the runtime has event channels and time:
// notify through EVTCHNOP_send, wait by yielding (the "clock" counts yields).
extern "C" char __pvk_virt_base[];
struct YieldingStore {
    std::uint32_t port;
    std::uint64_t yields;
};
void store_notify(void* context) {
    pvk_evtchn_send send{};
    send.port = static_cast<YieldingStore*>(context)->port;
    pvk_evtchnop_send(&send);
}
int store_wait(void* context, std::uint64_t deadline) {
    auto* store = static_cast<YieldingStore*>(context);
    if (store->yields >= deadline)
        return 0;
    ++store->yields;
    pvk_schedop_yield();
    return 1;
}
std::uint64_t store_now(void* context) { return static_cast<YieldingStore*>(context)->yields; }
pvk_xs_client xenstore;
}  // namespace

extern "C" int pvk_main(const pvk_start_info* start_info) {
    char text[64];
    static const char expected[] = "ab  |-0042|ff|7";
    const int length = pvk_snprintf(text, sizeof text, "%-4s|%05d|%x|%lu", "ab", -42, 255u, 7ul);
    check(length == sizeof expected - 1 && __builtin_memcmp(text, expected, sizeof expected) == 0, "format: pvk_snprintf");

    std::uint64_t bitmap[1];
    PageAllocator pages;
    const bool pages_ready =
        pages.init(Pfn{reinterpret_cast<std::uintptr_t>(arena) / 4096}, arena_pages, bitmap) == PageError::none;
    Heap heap(pages, map_arena_page, nullptr);
    set_global_heap(&heap);
    int* numbers = new int[100];
    numbers[99] = 5;
    void* block = pvk_malloc(3000);
    check(pages_ready && numbers[99] == 5 && block != nullptr && heap.blocks_in_use() == 2, "memory: new and pvk_malloc");
    delete[] numbers;
    check(pvk_free(block) == PVK_HEAP_OK && pvk_free(block) == PVK_HEAP_NOT_A_BLOCK && heap.blocks_in_use() == 0,
          "memory: pvk_free and a double free");

    auto front = FrontRing<SharedRing<Request, Response>>::init(ring_page);
    BackRing<SharedRing<Request, Response>> back(ring_page);
    Request request{};
    Response response{};
    const bool sent = front.queue_request({9}) && front.push_requests_and_check_notify();
    const bool served = back.take_request(request) == RingTake::taken && back.queue_response({-int(request.id)}) &&
                        back.push_responses_and_check_notify();
    check(sent && served && front.take_response(response) == RingTake::taken && response.status == -9,
          "ring: a request and its response");

    static pvkit::abi::shared_info fake_shared{};
    EventBinding table[8];
    EventChannels events(fake_shared, fake_shared.vcpu_info[0], table);
    int calls = 0;
    const bool bound = events.bind(3, count_event, &calls) == EventError::none && events.mask(3) == EventError::none;
    fake_shared.evtchn_pending[0] = 1u << 3;
    bool upcall = false;
    const bool unmasked = events.unmask(3, &upcall) == EventError::none && upcall;
    check(bound && unmasked && events.handle_upcall().handled == 1 && calls == 1, "events: unmask re-raises, upcall calls");

    // The store page, found through the M2P in the initial mapping, and a round trip.
    const auto* m2p = reinterpret_cast<const std::uint64_t*>(PVK_MACH2PHYS_VIRT_START);
    auto* store_page = reinterpret_cast<pvk_xenstore_domain_interface*>(__pvk_virt_base +
                                                                        m2p[start_info->store_mfn] * 4096);
    static YieldingStore store_channel{start_info->store_evtchn, 0};
    const pvk_xs_channel channel{store_notify, store_wait, store_now, &store_channel};
    pvk_xs_init(&xenstore, store_page, &channel);
    pvk_xs_set_timeout(&xenstore, 100000);
    char home[32];
    const int got = pvk_xs_get_domain_path(&xenstore, 0, home, sizeof home);
    const bool written = pvk_xs_write(&xenstore, 0, "data/parts", "ok") == 0;
    char value[8];
    const bool read = pvk_xs_read(&xenstore, 0, "data/parts", value, sizeof value, nullptr) == 0;
    check(got == 0 && written && read && __builtin_strcmp(value, "ok") == 0 &&
              __builtin_strcmp(home, "/local/domain/0") == 0,
          "xenstore: get_domain_path, write and read through the store ring");

    pvk_snprintf(text, sizeof text, "RESULT: %d/%d\n", checks - failures, checks);
    print(text);
    return failures;
}
