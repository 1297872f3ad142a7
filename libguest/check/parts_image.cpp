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
}  // namespace

extern "C" int pvk_main(const pvk_start_info*) {
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

    pvk_snprintf(text, sizeof text, "RESULT: %d/%d\n", checks - failures, checks);
    print(text);
    return failures;
}
