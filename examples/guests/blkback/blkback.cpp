// blkback: the backend half of Xen's block split driver (io/blkif.h), serving RAM disks.
//
// The toolstack creates each device's two xenstore directories before the domains run, as libxl
// does: ours, backend/vbd/<front>/<devid> under this domain's home (frontend, frontend-id, params
// = "ram:<size>", mode = r|w, dev = xvda..., state 1), and the frontend's device/vbd/<devid>.
// blkback watches backend/vbd and serves every device that appears there, several at once (up to
// max_devices): it takes a zeroed RAM disk from the page allocator, publishes sectors, info,
// sector-size and feature-flush-cache and goes InitWait; when the frontend is Initialised (or
// Connected) it maps the ring-ref, binds the event-channel, checks the protocol and goes
// Connected, then answers requests (ram_disk.hpp) until the frontend goes Closing or Closed. Then
// Closing, the ring unmapped and the port closed, Closed. A frontend that comes back
// (Initialising again, as Linux's does after a kexec) gets InitWait and the same disk, its data
// kept. The device is done when the toolstack removes it or the frontend's domain is gone;
// blkback powers off when every device it saw is done.
//
// One loop serves everything: xenstore watch events (a device appearing, a frontend's state),
// then every connected ring; when nothing is left to do it waits on the store's port and every
// ring's port at once (guest::wait_any).
#include "ram_disk.hpp"

#include <guest/evtchn.hpp>
#include <guest/grants.hpp>
#include <guest/ring.hpp>
#include <guest/start.hpp>
#include <guest/time.hpp>
#include <guest/xenbus.hpp>
#include <guest/xenstore.hpp>
#include <pvkit/console.h>
#include <pvkit/format.h>

#include <charconv>
#include <optional>
#include <span>
#include <string_view>

namespace {

namespace guest = pvkit::guest;
namespace abi = pvkit::abi;
using blkback::RamDisk;

using BlkRing = guest::SharedRing<abi::blkif_request, abi::blkif_response>;
static_assert(BlkRing::size == 32, "Xen's blkif ring on one page holds 32 requests");

constexpr std::uint64_t second = 1'000'000'000;
constexpr std::size_t max_devices = 8;
constexpr std::string_view vbd_token = "blkback-vbd";
constexpr std::string_view frontend_token = "blkback-frontend";

enum class Phase : std::uint8_t {
    free,       // no device in this slot
    offered,    // InitWait: the disk is ready, waiting for the frontend's ring
    connected,  // serving the ring
    closed,     // Closed: until the frontend comes back or goes away
    done,
};

struct Device {
    Phase phase = Phase::free;
    abi::domid_t frontend_id = 0;
    std::uint32_t devid = 0;
    char backend[guest::xenbus_path_max] = {};
    std::size_t backend_length = 0;
    char frontend[guest::xenbus_path_max] = {};
    std::size_t frontend_length = 0;
    bool watching_frontend = false;
    bool refused = false;  // never offered again
    char name[16] = {};    // the `dev` key: xvda...
    char target[32] = {};  // the `params` key, for messages
    RamDisk disk;
    guest::ForeignMapping ring_page{};
    std::optional<guest::BackRing<BlkRing>> ring;
    guest::EventPort port = 0;
    std::uint64_t requests = 0, reads = 0, writes = 0;

    std::string_view backend_path() const { return {backend, backend_length}; }
    std::string_view frontend_path() const { return {frontend, frontend_length}; }
};

Device devices[max_devices];

// Directory listings and watch events: a reply's payload is at most 4096 bytes, so these always fit.
char names[abi::XENSTORE_PAYLOAD_MAX], more_names[abi::XENSTORE_PAYLOAD_MAX], event[abi::XENSTORE_PAYLOAD_MAX];

std::string_view join(std::span<char> buffer, std::string_view directory, std::string_view key) {
    const int length = pvk_snprintf(buffer.data(), buffer.size(), "%.*s/%.*s", static_cast<int>(directory.size()),
                                    directory.data(), static_cast<int>(key.size()), key.data());
    const bool fits = length > 0 && static_cast<std::size_t>(length) < buffer.size();
    return {buffer.data(), fits ? static_cast<std::size_t>(length) : 0};
}

// `<directory>/<key>` into `value` (NUL-terminated); its text, or nullopt when absent or too long.
std::optional<std::string_view> read_key(guest::XenstoreClient& store, std::string_view directory,
                                         std::string_view key, std::span<char> value) {
    char path[guest::xenbus_path_max];
    const auto length = store.read(join(path, directory, key), value);
    return length ? std::optional<std::string_view>{{value.data(), *length}} : std::nullopt;
}

void copy_text(std::span<char> into, std::string_view text) {
    const std::size_t length = text.size() < into.size() - 1 ? text.size() : into.size() - 1;
    for (std::size_t i = 0; i < length; ++i)
        into[i] = text[i];
    into[length] = '\0';
}

// ---- the xenbus handshake, backend side ----

// Closing (while connected: the ring unmapped, the port closed and what was served said first),
// then Closed.
void close_device(guest::XenstoreClient& store, Device& device) {
    if (device.phase == Phase::connected) {
        (void)guest::switch_state(store, device.backend_path(), guest::XenbusState::closing);
        device.ring.reset();
        if (guest::unmap_foreign_grant(device.ring_page) != abi::GNTST_okay) {
            pvk_printf("blkback: %s: the ring could not be unmapped\n", device.name);
            device.refused = true;  // its mapping would be lost on a reconnect
        }
        (void)guest::close_port(device.port);
        pvk_printf("blkback: domain %u closed %s after %lu requests (%lu reads, %lu writes)\n", device.frontend_id,
                   device.name, static_cast<unsigned long>(device.requests), static_cast<unsigned long>(device.reads),
                   static_cast<unsigned long>(device.writes));
        device.requests = device.reads = device.writes = 0;
    }
    (void)guest::switch_state(store, device.backend_path(), guest::XenbusState::closed);
    device.phase = Phase::closed;
}

void refuse(guest::XenstoreClient& store, Device& device, const char* why) {
    pvk_printf("blkback: %s for domain %u refused: %s\n", device.name, device.frontend_id, why);
    device.refused = true;
    close_device(store, device);
}

// The device is gone: its frontend's state no longer watched, its disk's pages back.
void finish(guest::XenstoreClient& store, Device& device) {
    if (device.watching_frontend) {
        char path[guest::xenbus_path_max];
        (void)store.unwatch(join(path, device.frontend_path(), "state"), frontend_token);
    }
    blkback::release_ram_disk(device.disk);
    device.phase = Phase::done;
}

// A device the toolstack made: its disk, the keys the frontend reads, InitWait.
void offer(guest::XenstoreClient& store, Device& device) {
    char value[64], path[guest::xenbus_path_max];
    const auto name = read_key(store, device.backend_path(), "dev", value);
    if (name)
        copy_text(device.name, *name);
    else
        pvk_snprintf(device.name, sizeof device.name, "vbd %u", static_cast<unsigned>(device.devid));
    const auto peer = guest::read_other_end(store, device.backend_path(), guest::XenbusEnd::frontend, device.frontend);
    if (!peer || peer->domain != device.frontend_id) {
        pvk_printf("blkback: %s: no frontend named for domain %u\n", device.name, device.frontend_id);
        device.phase = Phase::done;
        return;
    }
    device.frontend_length = peer->path.size();
    // From now on the frontend's state drives the device, whatever happens to the offer.
    const std::string_view frontend_state = join(path, device.frontend_path(), "state");
    device.watching_frontend = static_cast<bool>(store.watch(frontend_state, frontend_token));
    device.phase = Phase::offered;

    const auto params = read_key(store, device.backend_path(), "params", value);
    const std::uint64_t bytes = params ? blkback::ram_disk_bytes(*params) : 0;
    copy_text(device.target, params ? *params : "");
    if (!params)  // the toolstack removed the device meanwhile (its frontend went away)
        return refuse(store, device, "the device is gone from the xenstore");
    if (bytes == 0)
        return refuse(store, device, "params is not ram:<size>");
    const auto mode = read_key(store, device.backend_path(), "mode", value);
    if (!mode || (*mode != "r" && *mode != "w"))
        return refuse(store, device, "mode is not r or w");
    if (!blkback::allocate_ram_disk(device.disk, bytes, *mode == "r"))
        return refuse(store, device, "not enough memory for the disk");

    char sectors[24], info[8];
    pvk_snprintf(sectors, sizeof sectors, "%lu", static_cast<unsigned long>(device.disk.sectors));
    pvk_snprintf(info, sizeof info, "%u", device.disk.read_only ? abi::VDISK_READONLY : 0u);
    const guest::XenbusKey keys[] = {
        {"sectors", sectors}, {"info", info}, {"sector-size", "512"}, {"feature-flush-cache", "1"}};
    if (!guest::publish(store, device.backend_path(), keys, guest::XenbusState::init_wait))
        return refuse(store, device, "the disk's keys could not be written");
}

// The frontend came back after closing: the disk's keys are still there, so InitWait again.
void offer_again(guest::XenstoreClient& store, Device& device) {
    pvk_printf("blkback: domain %u reconnects to %s\n", device.frontend_id, device.name);
    device.phase = Phase::offered;
    if (!guest::switch_state(store, device.backend_path(), guest::XenbusState::init_wait))
        refuse(store, device, "InitWait could not be written");
}

// The frontend is Initialised: its ring mapped, its port bound, Connected.
void connect(guest::XenstoreClient& store, Device& device) {
    char value[32];
    const auto ring_ref = guest::read_number(store, device.frontend_path(), "ring-ref", 0xffff'ffff);
    const auto remote_port = guest::read_number(store, device.frontend_path(), "event-channel", 0xffff'ffff);
    if (!ring_ref || !remote_port)
        return refuse(store, device, "no ring-ref and event-channel");
    // Only the 64-bit layout is served; absent means the backend's own (Linux's blkback agrees).
    if (const auto protocol = read_key(store, device.frontend_path(), "protocol", value);
        protocol && *protocol != "x86_64-abi")
        return refuse(store, device, "its protocol is not x86_64-abi");
    device.ring_page = guest::map_foreign_grant(device.frontend_id, static_cast<guest::GrantRef>(*ring_ref), false);
    if (device.ring_page.address == nullptr)
        return refuse(store, device, "its ring-ref could not be mapped");
    const long port = guest::bind_interdomain(device.frontend_id, static_cast<guest::EventPort>(*remote_port));
    if (port <= 0) {
        (void)guest::unmap_foreign_grant(device.ring_page);
        return refuse(store, device, "its event-channel could not be bound");
    }
    device.port = static_cast<guest::EventPort>(port);
    device.ring.emplace(*static_cast<BlkRing*>(device.ring_page.address));
    device.phase = Phase::connected;
    // Said before Connected is written, which lets the frontend go on: the lines keep their order.
    pvk_printf("blkback: serving %s (%lu sectors%s) to domain %u as %s\n", device.target,
               static_cast<unsigned long>(device.disk.sectors), device.disk.read_only ? ", read-only" : "",
               device.frontend_id, device.name);
    if (!guest::switch_state(store, device.backend_path(), guest::XenbusState::connected))
        return refuse(store, device, "Connected could not be written");
}

// Acts on the frontend's state, as often as that moves the device on.
void follow_frontend(guest::XenstoreClient& store, Device& device) {
    const auto read = guest::read_state(store, device.frontend_path());
    // A frontend whose domain is gone took its home along: its state reads as missing, or, when
    // the store will not say whether a path it hides exists, EACCES. Either counts as closed.
    if (!read && read.error() != guest::XsErrc::eacces)
        return;
    const guest::XenbusState state = read ? *read : guest::XenbusState::unknown;
    const bool frontend_gone = state == guest::XenbusState::unknown;
    const bool frontend_leaving = frontend_gone || state == guest::XenbusState::closed ||
                                  state == guest::XenbusState::closing;
    Phase before;
    do {
        before = device.phase;
        if (device.phase == Phase::offered &&
            (state == guest::XenbusState::initialised || state == guest::XenbusState::connected))
            connect(store, device);
        else if ((device.phase == Phase::offered || device.phase == Phase::connected) && frontend_leaving)
            close_device(store, device);
        else if (device.phase == Phase::closed && frontend_gone)
            finish(store, device);
        else if (device.phase == Phase::closed && state == guest::XenbusState::initialising && !device.refused)
            offer_again(store, device);
    } while (device.phase != before);
}

Device* find_device(abi::domid_t frontend_id, std::uint32_t devid) {
    for (Device& device : devices) {
        if (device.phase != Phase::free && device.frontend_id == frontend_id && device.devid == devid)
            return &device;
    }
    return nullptr;
}

// Devices under backend/vbd/<front>/<devid> that no slot serves yet get one. Those whose
// directory is gone were unplugged (libxl removes both directories): they are closed, and their
// slots freed once done.
void find_devices(guest::XenstoreClient& store, std::string_view vbd) {
    bool listed[max_devices] = {};
    const auto fronts = store.directory(vbd, names);
    if (!fronts && fronts.error() != guest::XsErrc::enoent)
        return;
    for (const std::string_view front : fronts ? *fronts : guest::XsNames{}) {
        char path[guest::xenbus_path_max];
        const auto frontend_id = guest::parse_number(front, 0x7fef);  // below DOMID_FIRST_RESERVED
        if (!frontend_id)
            continue;
        const auto ids = store.directory(join(path, vbd, front), more_names);
        if (!ids) {
            // Not listed, but not known to be gone either: left as they are.
            for (std::size_t i = 0; i < max_devices; ++i)
                listed[i] = listed[i] ||
                            (ids.error() != guest::XsErrc::enoent && devices[i].frontend_id == *frontend_id);
            continue;
        }
        for (const std::string_view id : *ids) {
            const auto devid = guest::parse_number(id, 0xffff'ffff);
            const auto frontend = static_cast<abi::domid_t>(*frontend_id);
            Device* device = devid ? find_device(frontend, static_cast<std::uint32_t>(*devid)) : nullptr;
            if (devid && device == nullptr) {
                for (Device& free : devices)
                    device = device == nullptr && free.phase == Phase::free ? &free : device;
                if (device == nullptr) {
                    pvk_printf("blkback: no room for device %u of domain %u\n", static_cast<unsigned>(*devid),
                               static_cast<unsigned>(*frontend_id));
                    continue;
                }
                *device = {};
                device->frontend_id = frontend;
                device->devid = static_cast<std::uint32_t>(*devid);
                char device_path[guest::xenbus_path_max];
                const std::string_view backend = join(device_path, join(path, vbd, front), id);
                copy_text(device->backend, backend);
                device->backend_length = backend.size();
                offer(store, *device);
            }
            if (device != nullptr)
                listed[device - devices] = true;
        }
    }
    for (std::size_t i = 0; i < max_devices; ++i) {
        Device& device = devices[i];
        if (listed[i] || device.phase == Phase::free)
            continue;
        if (device.phase != Phase::done) {
            close_device(store, device);
            finish(store, device);
        }
        device.phase = Phase::free;
    }
}

// ---- serving requests ----

// Answers what the ring holds, at most a ring's worth (so other devices get their turn); whether
// it took anything.
bool serve_ring(guest::XenstoreClient& store, Device& device) {
    bool took = false;
    abi::blkif_request request;
    for (guest::RingIndex served = 0; served < BlkRing::size; ++served) {
        const guest::RingTake take = device.ring->take_request(request);
        if (take == guest::RingTake::empty)
            break;
        if (take == guest::RingTake::producer_overflow) {
            refuse(store, device, "its ring's request index runs past the ring");
            return false;
        }
        abi::blkif_response response{};
        response.id = request.id;
        response.operation = request.operation;
        response.status = blkback::serve_request(device.disk, device.frontend_id, request);
        (void)device.ring->queue_response(response);  // the request just taken freed a slot
        ++device.requests;
        device.reads += request.operation == abi::BLKIF_OP_READ;
        device.writes += request.operation == abi::BLKIF_OP_WRITE;
        took = true;
    }
    if (took && device.ring->push_responses_and_check_notify())
        (void)guest::notify(device.port);
    return took;
}

}  // namespace

int pvkit::guest::guest_main(const abi::start_info& info) {
    if (!guest::setup() || pvk_console_init() != 0)
        return 1;
    guest::XenstoreClient* store = guest::xenstore();
    char domid[8], vbd_path[64];
    const auto read = store != nullptr ? store->read("domid", domid) : guest::XsResult<std::size_t>{guest::XsErrc::eio};
    const auto self = read ? guest::parse_number({domid, *read}, 0x7fef) : guest::XsResult<std::uint64_t>{read.error()};
    if (!self) {
        pvk_printf("blkback: needs the xenstore\n");
        return 1;
    }
    const int vbd_length = pvk_snprintf(vbd_path, sizeof vbd_path, "/local/domain/%u/backend/vbd",
                                        static_cast<unsigned>(*self));
    const std::string_view vbd{vbd_path, static_cast<std::size_t>(vbd_length)};
    if (!store->watch(vbd, vbd_token)) {
        pvk_printf("blkback: cannot watch %s\n", vbd_path);
        return 1;
    }

    bool rescan = true, recheck = false, seen_any = false;
    std::uint64_t dropped = store->dropped_events();
    for (;;) {
        // Watch events only say where to look again.
        for (guest::XsResult<guest::XsWatchEvent> next = store->next_event(event, 0); next;
             next = store->next_event(event, 0)) {
            rescan = rescan || next->token == vbd_token;
            recheck = recheck || next->token == frontend_token;
        }
        if (store->dropped_events() != dropped) {
            dropped = store->dropped_events();
            rescan = recheck = true;
        }
        if (rescan) {
            find_devices(*store, vbd);
            rescan = false;
            recheck = true;
        }
        if (recheck) {
            recheck = false;
            for (Device& device : devices) {
                if (device.phase != Phase::free && device.phase != Phase::done)
                    follow_frontend(*store, device);
            }
        }

        bool busy = false, all_done = true;
        for (Device& device : devices) {
            if (device.phase == Phase::connected)
                busy = serve_ring(*store, device) || busy;
            seen_any = seen_any || device.phase != Phase::free;
            all_done = all_done && (device.phase == Phase::free || device.phase == Phase::done);
        }
        if (seen_any && all_done)
            break;
        if (busy || store->queued_events() != 0)
            continue;
        // Asks each frontend for an event at its next request, then looks once more before sleeping.
        guest::EventPort ports[1 + max_devices] = {static_cast<guest::EventPort>(info.store_evtchn)};
        std::size_t port_count = 1;
        for (Device& device : devices) {
            if (device.phase != Phase::connected)
                continue;
            busy = device.ring->final_check_for_requests() || busy;
            ports[port_count++] = device.port;
        }
        if (!busy)
            (void)guest::wait_any({ports, port_count}, 0);
    }
    (void)store->unwatch(vbd, vbd_token);
    (void)pvk_console_flush(guest::monotonic_ns() + second);
    return 0;
}
