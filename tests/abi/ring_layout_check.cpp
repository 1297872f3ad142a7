// guest/ring.hpp against Xen's io/ring.h: for several request/response pairs, the shared ring's
// header fields, its entry array and its entry count must equal what DEFINE_RING_TYPES and
// __CONST_RING_SIZE give. Everything is checked at compile time; the program only reports.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include <xen/io/blkif.h>
#include <xen/io/netif.h>
#include <xen/io/ring.h>

#include <guest/ring.hpp>

// A small pair of our own, with a response smaller than the request.
struct pvk_test_request {
    std::uint64_t id;
    std::uint8_t operation;
    std::uint16_t length;
};
struct pvk_test_response {
    std::uint16_t id;
};
DEFINE_RING_TYPES(pvk_test, struct pvk_test_request, struct pvk_test_response);

// Entries so large that only a few fit: an entry is the larger member (1400 bytes), and
// (4096 - 64) / 1400 = 2 entries.
struct pvk_big_request {
    std::uint8_t bytes[1000];
};
struct pvk_huge_response {
    std::uint8_t bytes[1400];
};
DEFINE_RING_TYPES(pvk_big, struct pvk_big_request, struct pvk_huge_response);

#define SAME_RING_LAYOUT(xen_name, ours, bytes)                                                              \
    static_assert(offsetof(ours, req_prod) == offsetof(struct xen_name##_sring, req_prod));                \
    static_assert(offsetof(ours, req_event) == offsetof(struct xen_name##_sring, req_event));              \
    static_assert(offsetof(ours, rsp_prod) == offsetof(struct xen_name##_sring, rsp_prod));                \
    static_assert(offsetof(ours, rsp_event) == offsetof(struct xen_name##_sring, rsp_event));              \
    static_assert(offsetof(ours, pvt) == offsetof(struct xen_name##_sring, pvt));                          \
    static_assert(sizeof(ours::pvt) == sizeof(((struct xen_name##_sring*)nullptr)->pvt));                   \
    static_assert(offsetof(ours, pad) == offsetof(struct xen_name##_sring, __pad));                        \
    static_assert(sizeof(ours::pad) == sizeof(((struct xen_name##_sring*)nullptr)->__pad));                 \
    static_assert(offsetof(ours, ring) == offsetof(struct xen_name##_sring, ring));                        \
    static_assert(sizeof(ours::Entry) == sizeof(union xen_name##_sring_entry));                            \
    static_assert(alignof(ours::Entry) == alignof(union xen_name##_sring_entry));                          \
    static_assert(ours::size == __CONST_RING_SIZE(xen_name, bytes));                                        \
    static_assert(sizeof(ours) <= (bytes));                                                                 \
    static_assert(sizeof(ours::req_prod) == sizeof(RING_IDX))

using BlkRing = pvkit::guest::SharedRing<blkif_request, blkif_response>;
using BlkRing2Pages = pvkit::guest::SharedRing<blkif_request, blkif_response, 8192>;
using NetTxRing = pvkit::guest::SharedRing<netif_tx_request, netif_tx_response>;
using NetRxRing = pvkit::guest::SharedRing<netif_rx_request, netif_rx_response>;
using TestRing = pvkit::guest::SharedRing<pvk_test_request, pvk_test_response>;
using BigRing = pvkit::guest::SharedRing<pvk_big_request, pvk_huge_response>;

SAME_RING_LAYOUT(blkif, BlkRing, 4096);
SAME_RING_LAYOUT(blkif, BlkRing2Pages, 8192);
SAME_RING_LAYOUT(netif_tx, NetTxRing, 4096);
SAME_RING_LAYOUT(netif_rx, NetRxRing, 4096);
SAME_RING_LAYOUT(pvk_test, TestRing, 4096);
SAME_RING_LAYOUT(pvk_big, BigRing, 4096);

// The counts Xen's drivers are known for, as a check that the macros above compare something.
static_assert(BlkRing::size == 32 && NetTxRing::size == 256 && BigRing::size == 2);
static_assert(pvkit::guest::ring_header_bytes == offsetof(struct blkif_sring, ring));

// Xen's initial values, for a ring initialised by ours and read by Xen's macros.
static bool same_initial_ring() {
    static TestRing ours;
    ours.req_prod = ours.req_event = ours.rsp_prod = ours.rsp_event = 0xdeadbeef;
    ours.pad[7] = 0xff;
    ours.init();
    static struct pvk_test_sring xens;
    std::memcpy(&xens, &ours, offsetof(struct pvk_test_sring, ring));
    static struct pvk_test_sring expected;
    std::memset(&expected, 0xff, sizeof expected);
    SHARED_RING_INIT(&expected);
    return std::memcmp(&xens, &expected, offsetof(struct pvk_test_sring, ring)) == 0;
}

int main() {
    if (!same_initial_ring()) {
        std::puts("FAIL: SharedRing::init differs from SHARED_RING_INIT");
        return 1;
    }
    std::printf("ring layouts equal Xen's io/ring.h: blkif %u entries, netif tx %u, netif rx %u, test %u, big %u\n",
                unsigned(BlkRing::size), unsigned(NetTxRing::size), unsigned(NetRxRing::size), unsigned(TestRing::size),
                unsigned(BigRing::size));
    return 0;
}
