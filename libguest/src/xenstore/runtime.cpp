// The domain's own xenstore connection (images only): start_info's store page, found through the
// M2P, and its event channel, masked so that the upcall leaves its pending bit to guest::wait.
// One client serves C (pvk_xenstore) and C++ (guest::xenstore).
#include <guest/evtchn.hpp>
#include <guest/start.hpp>
#include <guest/time.hpp>
#include <guest/xenstore.hpp>
#include <pvkit/xenstore.h>

namespace pvkit::guest {

XenstoreClient& client_of(pvk_xs_client* xs);

namespace {

pvk_xs_client store_client;
pvk_xs_client* connected = nullptr;
bool tried = false;

void notify_store(void* port) { (void)notify(*static_cast<EventPort*>(port)); }
// The client's deadline 0 has passed already (next_event's "only what has arrived"), where
// guest::wait's 0 is no limit: 1 is as long past and not special.
int wait_for_store(void* port, std::uint64_t deadline) {
    return wait(*static_cast<EventPort*>(port), deadline == 0 ? 1 : deadline) ? 1 : 0;
}
std::uint64_t store_clock(void*) { return monotonic_ns(); }

}  // namespace

XenstoreClient* xenstore() {
    pvk_xs_client* client = pvk_xenstore();
    return client != nullptr ? &client_of(client) : nullptr;
}

}  // namespace pvkit::guest

extern "C" pvk_xs_client* pvk_xenstore(void) {
    using namespace pvkit::guest;
    if (tried)
        return connected;
    tried = true;
    static EventPort port = start_info().store_evtchn;
    const std::uint64_t mfn = start_info().store_mfn;
    void* page = mfn != 0 && events_setup() ? mfn_to_virt(mfn) : nullptr;
    if (page == nullptr || event_channels()->mask(port) != EventError::none)
        return nullptr;
    const pvk_xs_channel channel{notify_store, wait_for_store, store_clock, &port};
    pvk_xs_init(&store_client, static_cast<pvk_xenstore_domain_interface*>(page), &channel);
    connected = &store_client;
    return connected;
}
