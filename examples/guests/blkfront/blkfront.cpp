// blkfront: the frontend half of Xen's block split driver (io/blkif.h), testing every disk the
// toolstack gave this domain.
//
// For each device under device/vbd in its home (named there by the toolstack, as libxl does:
// backend, backend-id, state 1): it waits for the backend's InitWait, grants a ring page, offers
// an event channel, publishes ring-ref, event-channel and protocol = x86_64-abi with Initialised
// in one transaction, waits for Connected, reads sectors, sector-size and info, and goes
// Connected. Then it writes the whole disk with a pattern that differs per sector, flushes, reads
// it all back and compares every byte, with up to a ring's worth of requests in flight, each of up
// to 11 granted pages (granted read-only for writes, writable for reads, and ended once answered);
// and checks that requests running past the end of the disk are refused. A read-only disk is
// read back as zeros instead, after a write is refused. Then Closing, and once the backend is
// Closed the ring's grant ends and the device goes Closed. Then it comes back (Initialising, as a
// frontend does after a kexec), connects again and reads the whole disk back: the backend kept it.
#include <guest/evtchn.hpp>
#include <guest/frames.hpp>
#include <guest/grants.hpp>
#include <guest/ring.hpp>
#include <guest/start.hpp>
#include <guest/time.hpp>
#include <guest/xenbus.hpp>
#include <guest/xenstore.hpp>
#include <pvkit/console.h>
#include <pvkit/format.h>

#include <charconv>
#include <iterator>
#include <optional>
#include <span>
#include <string_view>

namespace {

namespace guest = pvkit::guest;
namespace abi = pvkit::abi;

using BlkRing = guest::SharedRing<abi::blkif_request, abi::blkif_response>;
static_assert(BlkRing::size == 32, "Xen's blkif ring on one page holds 32 requests");

constexpr std::uint64_t second = 1'000'000'000;
constexpr std::uint32_t sector_bytes = 512;
constexpr std::uint32_t sectors_per_page = 4096 / sector_bytes;
constexpr std::uint32_t segments_max = abi::BLKIF_MAX_SEGMENTS_PER_REQUEST;
constexpr std::uint32_t sectors_per_request = segments_max * sectors_per_page;

// One request in flight: its id is the slot's index; its pages are granted while it is.
struct Slot {
    guest::Page pages[segments_max];
    guest::GrantRef refs[segments_max];
    std::uint32_t granted = 0;
    std::uint64_t sector = 0;
    std::uint32_t sectors = 0;
    bool busy = false;
};
Slot slots[BlkRing::size];

struct Disk {
    std::string_view device;  // our directory
    std::string_view backend;
    abi::domid_t backend_id = 0;
    std::uint64_t sectors = 0;
    bool read_only = false;
    guest::FrontRing<BlkRing>* ring = nullptr;
    guest::EventPort port = 0;
    std::uint64_t seed = 0;
    char name[16] = {};
};

bool fail(const char* what) {
    pvk_printf("blkfront: FAIL %s\n", what);
    return false;
}

// ---- the pattern ----

// Word `word` of sector `sector`: splitmix64 of both and the seed, so that no two sectors (nor a
// sector and its neighbour's bytes shifted) hold the same bytes.
std::uint64_t pattern_word(std::uint64_t seed, std::uint64_t sector, std::uint32_t word) {
    std::uint64_t x = seed + (sector * (sector_bytes / 8) + word) * 0x9e37'79b9'7f4a'7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58'476d'1ce4'e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d0'49bb'1331'11ebull;
    return x ^ (x >> 31);
}

// What a sector must hold: the pattern, or zeros on a read-only disk (a new RAM disk's).
std::uint64_t expected_word(const Disk& disk, std::uint64_t sector, std::uint32_t word) {
    return disk.read_only ? 0 : pattern_word(disk.seed, sector, word);
}

std::uint64_t* sector_words(Slot& slot, std::uint32_t index) {
    return static_cast<std::uint64_t*>(slot.pages[index / sectors_per_page].address) +
           (index % sectors_per_page) * (sector_bytes / 8);
}

void fill(const Disk& disk, Slot& slot) {
    for (std::uint32_t i = 0; i < slot.sectors; ++i) {
        std::uint64_t* words = sector_words(slot, i);
        for (std::uint32_t w = 0; w < sector_bytes / 8; ++w)
            words[w] = pattern_word(disk.seed, slot.sector + i, w);
    }
}

// The first sector of the slot that does not hold what it must, or nullopt.
std::optional<std::uint64_t> first_bad_sector(const Disk& disk, Slot& slot) {
    for (std::uint32_t i = 0; i < slot.sectors; ++i) {
        const std::uint64_t* words = sector_words(slot, i);
        for (std::uint32_t w = 0; w < sector_bytes / 8; ++w) {
            if (words[w] != expected_word(disk, slot.sector + i, w))
                return slot.sector + i;
        }
    }
    return std::nullopt;
}

// ---- requests ----

// Grants the slot's pages and queues a request for `sectors` sectors from `sector` (the ring has
// room: the caller checked).
bool queue(Disk& disk, std::uint32_t index, std::uint8_t operation, std::uint64_t sector, std::uint32_t sectors) {
    Slot& slot = slots[index];
    slot.sector = sector;
    slot.sectors = sectors;
    if (operation == abi::BLKIF_OP_WRITE)
        fill(disk, slot);
    abi::blkif_request request{};
    request.operation = operation;
    request.id = index;
    request.sector_number = sector;
    request.nr_segments = static_cast<std::uint8_t>((sectors + sectors_per_page - 1) / sectors_per_page);
    guest::GrantTable* grants = guest::grant_table();
    slot.granted = 0;
    for (std::uint32_t i = 0; i < request.nr_segments; ++i) {
        // The backend only reads what we write, and only writes what we read.
        const guest::GrantResult granted =
            grants->grant_access(disk.backend_id, slot.pages[i].mfn, operation != abi::BLKIF_OP_READ);
        if (!granted)
            return fail("a data page granted");
        slot.refs[i] = granted.ref;
        slot.granted = i + 1;
        const std::uint32_t in_page = sectors - i * sectors_per_page;
        const std::uint32_t last = (in_page < sectors_per_page ? in_page : sectors_per_page) - 1;
        request.seg[i] = {granted.ref, 0, static_cast<std::uint8_t>(last)};
    }
    slot.busy = true;
    return disk.ring->queue_request(request) || fail("a request queued");
}

// Ends the grants of an answered request: the backend is done with them, so they must end now.
bool end_grants(Slot& slot) {
    guest::GrantTable* grants = guest::grant_table();
    bool ended = true;
    for (std::uint32_t i = 0; i < slot.granted; ++i)
        ended = grants->end_access(slot.refs[i]) == guest::GrantError::none && ended;
    slot.granted = 0;
    slot.busy = false;
    return ended || fail("the grants of an answered request ended");
}

// The next response, waiting for it (asking for an event first, then looking once more, as
// RING_FINAL_CHECK_FOR_RESPONSES does); nullopt after a failure.
std::optional<abi::blkif_response> next_response(Disk& disk) {
    abi::blkif_response response{};
    for (;;) {
        const guest::RingTake take = disk.ring->take_response(response);
        if (take == guest::RingTake::taken)
            break;
        if (take == guest::RingTake::producer_overflow) {
            (void)fail("the backend answers only requests made");
            return std::nullopt;
        }
        if (!disk.ring->final_check_for_responses() && !guest::wait(disk.port, guest::monotonic_ns() + 10 * second)) {
            (void)fail("a response within 10 s");
            return std::nullopt;
        }
    }
    if (response.id >= BlkRing::size || !slots[response.id].busy) {
        (void)fail("the response names a request in flight");
        return std::nullopt;
    }
    return response;
}

void push(Disk& disk) {
    if (disk.ring->push_requests_and_check_notify())
        (void)guest::notify(disk.port);
}

// One request alone, for the checks: its response's status, or nullopt after a failure.
std::optional<std::int16_t> round_trip(Disk& disk, std::uint8_t operation, std::uint64_t sector,
                                       std::uint32_t sectors) {
    if (!queue(disk, 0, operation, sector, sectors))
        return std::nullopt;
    push(disk);
    const auto response = next_response(disk);
    if (!response || !end_grants(slots[0]))
        return std::nullopt;
    return response->status;
}

// What the backend must refuse: each request has one thing wrong.
struct Malformed {
    std::uint8_t operation;
    std::uint8_t nr_segments;
    std::uint64_t sector;
    std::uint8_t first_sect, last_sect;
    bool ungranted_ref;    // a ref this domain never granted
    bool read_only_grant;  // a read into a page the backend may not write
    std::int16_t status;
};
constexpr Malformed malformed_requests[] = {
    {abi::BLKIF_OP_READ, 0, 0, 0, 0, false, false, abi::BLKIF_RSP_ERROR},                   // no segment
    {abi::BLKIF_OP_READ, segments_max + 1, 0, 0, 0, false, false, abi::BLKIF_RSP_ERROR},    // 12 segments
    {abi::BLKIF_OP_READ, 1, 0, 1, 0, false, false, abi::BLKIF_RSP_ERROR},                   // first > last
    {abi::BLKIF_OP_READ, 1, 0, 0, 8, false, false, abi::BLKIF_RSP_ERROR},                   // a ninth sector
    {abi::BLKIF_OP_READ, 1, ~std::uint64_t{0}, 0, 1, false, false, abi::BLKIF_RSP_ERROR},   // wraps around
    {abi::BLKIF_OP_READ, 1, 0, 0, 0, true, false, abi::BLKIF_RSP_ERROR},                    // not granted
    {abi::BLKIF_OP_READ, 1, 0, 0, 0, false, true, abi::BLKIF_RSP_ERROR},                    // read-only page
    {abi::BLKIF_OP_DISCARD, 1, 0, 0, 0, false, false, abi::BLKIF_RSP_EOPNOTSUPP},           // not offered
};

// Sends `shape` with every segment naming one granted page of slot 0; whether its status came.
bool malformed_refused(Disk& disk, const Malformed& shape) {
    guest::GrantTable* grants = guest::grant_table();
    const guest::GrantResult granted =
        grants->grant_access(disk.backend_id, slots[0].pages[0].mfn, shape.read_only_grant);
    if (!granted)
        return fail("a data page granted");
    abi::blkif_request request{};
    request.operation = shape.operation;
    request.nr_segments = shape.nr_segments;
    request.sector_number = shape.sector;
    for (abi::blkif_request_segment& segment : request.seg)
        segment = {shape.ungranted_ref ? guest::GrantTable::first_ref - 1 : granted.ref, shape.first_sect,
                   shape.last_sect};
    slots[0].refs[0] = granted.ref;
    slots[0].granted = 1;
    slots[0].busy = true;
    if (!disk.ring->queue_request(request))
        return fail("a request queued");
    push(disk);
    const auto response = next_response(disk);
    return response && end_grants(slots[0]) && response->status == shape.status;
}

struct PassResult {
    bool passed;
    std::uint64_t nanoseconds;
    std::uint32_t most_in_flight;
};

// Writes (filled with the pattern) or reads (then checked) every sector of the disk, keeping as
// many requests in flight as the ring holds.
PassResult whole_disk(Disk& disk, std::uint8_t operation) {
    std::uint32_t free_slots[BlkRing::size], free_count = 0, in_flight = 0, most_in_flight = 0;
    for (std::uint32_t i = BlkRing::size; i > 0; --i)
        free_slots[free_count++] = i - 1;
    std::uint64_t next = 0, finished = 0;
    const std::uint64_t start = guest::monotonic_ns();
    while (finished < disk.sectors) {
        bool queued = false;
        while (next < disk.sectors && free_count > 0 && !disk.ring->full()) {
            const std::uint32_t index = free_slots[--free_count];
            const std::uint64_t left = disk.sectors - next;
            const auto sectors = static_cast<std::uint32_t>(left < sectors_per_request ? left : sectors_per_request);
            if (!queue(disk, index, operation, next, sectors))
                return {false, 0, 0};
            next += sectors;
            queued = true;
            ++in_flight;
        }
        if (queued)
            push(disk);
        most_in_flight = in_flight > most_in_flight ? in_flight : most_in_flight;
        // Takes one response (waiting for it), then whatever else has come.
        do {
            const auto response = next_response(disk);
            if (!response)
                return {false, 0, 0};
            Slot& slot = slots[response->id];
            if (!end_grants(slot))
                return {false, 0, 0};
            if (response->status != abi::BLKIF_RSP_OKAY) {
                pvk_printf("blkfront: FAIL %s of sectors %lu..%lu: status %d\n",
                           operation == abi::BLKIF_OP_WRITE ? "write" : "read", static_cast<unsigned long>(slot.sector),
                           static_cast<unsigned long>(slot.sector + slot.sectors - 1), response->status);
                return {false, 0, 0};
            }
            if (operation == abi::BLKIF_OP_READ) {
                if (const auto bad = first_bad_sector(disk, slot)) {
                    pvk_printf("blkfront: FAIL sector %lu of %s reads back other bytes than were written\n",
                               static_cast<unsigned long>(*bad), disk.name);
                    return {false, 0, 0};
                }
            }
            finished += slot.sectors;
            free_slots[free_count++] = response->id;
            --in_flight;
        } while (disk.ring->unconsumed_responses() != 0);
    }
    return {true, guest::monotonic_ns() - start, most_in_flight};
}

void print_throughput(const char* verb, const Disk& disk, const PassResult& pass, const char* more) {
    const std::uint64_t kib = disk.sectors * sector_bytes / 1024;
    pvk_printf("blkfront: %s %lu KiB in %lu ms (%lu KiB/s)%s\n", verb, static_cast<unsigned long>(kib),
               static_cast<unsigned long>(pass.nanoseconds / 1'000'000),
               static_cast<unsigned long>(kib * second / (pass.nanoseconds + 1)), more);
}

// The data checks on a connected disk.
bool exercise(Disk& disk) {
    if (disk.read_only) {
        const auto refused = round_trip(disk, abi::BLKIF_OP_WRITE, 0, 1);
        if (!refused || *refused != abi::BLKIF_RSP_ERROR)
            return fail("a write to the read-only disk refused");
        pvk_printf("blkfront: a write to the read-only disk was refused\n");
    } else {
        const PassResult written = whole_disk(disk, abi::BLKIF_OP_WRITE);
        if (!written.passed)
            return false;
        char in_flight[40];
        pvk_snprintf(in_flight, sizeof in_flight, ", %u requests in flight", written.most_in_flight);
        print_throughput("wrote", disk, written, in_flight);
        const auto flushed = round_trip(disk, abi::BLKIF_OP_FLUSH_DISKCACHE, 0, 0);
        if (!flushed || *flushed != abi::BLKIF_RSP_OKAY)
            return fail("the disk's cache flushed");
    }
    const PassResult read = whole_disk(disk, abi::BLKIF_OP_READ);
    if (!read.passed)
        return false;
    print_throughput("read", disk, read, "");
    pvk_printf("blkfront: verified %lu sectors\n", static_cast<unsigned long>(disk.sectors));

    // Starting past the end, and starting on the last sector but running past it.
    const auto past_end = round_trip(disk, abi::BLKIF_OP_READ, disk.sectors, 1);
    const auto across_end = round_trip(disk, abi::BLKIF_OP_READ, disk.sectors - 1, 2);
    if (!past_end || !across_end)
        return false;
    if (*past_end != abi::BLKIF_RSP_ERROR || *across_end != abi::BLKIF_RSP_ERROR)
        return fail("reads past the end of the disk refused");
    pvk_printf("blkfront: a read past the end was refused\n");
    for (const Malformed& shape : malformed_requests) {
        if (!malformed_refused(disk, shape)) {
            pvk_printf("blkfront: FAIL malformed request %u refused with status %d\n",
                       static_cast<unsigned>(&shape - malformed_requests), shape.status);
            return false;
        }
    }
    pvk_printf("blkfront: %u malformed requests were refused\n", static_cast<unsigned>(std::size(malformed_requests)));
    return true;
}

// ---- the xenbus handshake, frontend side ----

std::string_view join(std::span<char> buffer, std::string_view directory, std::string_view key) {
    const int length = pvk_snprintf(buffer.data(), buffer.size(), "%.*s/%.*s", static_cast<int>(directory.size()),
                                    directory.data(), static_cast<int>(key.size()), key.data());
    const bool fits = length > 0 && static_cast<std::size_t>(length) < buffer.size();
    return {buffer.data(), fits ? static_cast<std::size_t>(length) : 0};
}

// The backend's answer to `wanted` within 30 s. Otherwise the device goes Closed, as a frontend
// whose backend gave up does, so that the backend can let go of it too.
bool wait_for_backend(guest::XenstoreClient& store, const Disk& disk, guest::XenbusState wanted, const char* what) {
    guest::XenbusState seen = guest::XenbusState::unknown;
    if (guest::wait_for_state(store, disk.backend, wanted, guest::monotonic_ns() + 30 * second, &seen))
        return true;
    pvk_printf("blkfront: FAIL the backend of %s %s (its state is %u)\n", disk.name, what, static_cast<unsigned>(seen));
    (void)guest::switch_state(store, disk.device, guest::XenbusState::closed);
    return false;
}

// One connection to the backend: the ring page granted to it and the port offered to it.
struct Connection {
    guest::Page ring_page{};
    guest::GrantRef ring_ref = 0;
    std::optional<guest::FrontRing<BlkRing>> ring;
};

// From InitWait to Connected: the ring granted, a port offered, ring-ref, event-channel and
// protocol published with Initialised, then the disk's size and mode read once the backend is
// Connected.
bool connect(guest::XenstoreClient& store, Disk& disk, Connection& connection) {
    if (!wait_for_backend(store, disk, guest::XenbusState::init_wait, "went InitWait"))
        return false;
    connection.ring_page = guest::allocate_page();
    guest::GrantTable* grants = guest::grant_table();
    if (connection.ring_page.address == nullptr || grants == nullptr)
        return fail("a page for the ring and the grant table");
    __builtin_memset(connection.ring_page.address, 0, 4096);
    connection.ring.emplace(guest::FrontRing<BlkRing>::init(*static_cast<BlkRing*>(connection.ring_page.address)));
    disk.ring = &*connection.ring;
    const guest::GrantResult ring_grant = grants->grant_access(disk.backend_id, connection.ring_page.mfn, false);
    const long port = guest::alloc_unbound(disk.backend_id);
    if (!ring_grant || port <= 0)
        return fail("the ring granted and a port offered");
    connection.ring_ref = ring_grant.ref;
    disk.port = static_cast<guest::EventPort>(port);
    char ring_ref[16], event_channel[16];
    pvk_snprintf(ring_ref, sizeof ring_ref, "%u", ring_grant.ref);
    pvk_snprintf(event_channel, sizeof event_channel, "%ld", port);
    const guest::XenbusKey keys[] = {
        {"ring-ref", ring_ref}, {"event-channel", event_channel}, {"protocol", "x86_64-abi"}};
    if (!guest::publish(store, disk.device, keys, guest::XenbusState::initialised))
        return fail("ring-ref, event-channel and protocol published");
    if (!wait_for_backend(store, disk, guest::XenbusState::connected, "went Connected"))
        return false;

    const auto sectors = guest::read_number(store, disk.backend, "sectors", ~std::uint64_t{0} / sector_bytes);
    const auto sector_size = guest::read_number(store, disk.backend, "sector-size", 0xffff'ffff);
    const auto info = guest::read_number(store, disk.backend, "info", 0xffff'ffff);
    if (!sectors || *sectors == 0 || !sector_size || *sector_size != sector_bytes || !info)
        return fail("the backend's sectors, sector-size (512) and info");
    disk.sectors = *sectors;
    disk.read_only = (*info & abi::VDISK_READONLY) != 0;
    return guest::switch_state(store, disk.device, guest::XenbusState::connected) || fail("Connected written");
}

// Closing; once the backend is Closed it has unmapped the ring, so the grant ends; Closed.
bool disconnect(guest::XenstoreClient& store, Disk& disk, Connection& connection) {
    if (!guest::switch_state(store, disk.device, guest::XenbusState::closing) ||
        !wait_for_backend(store, disk, guest::XenbusState::closed, "went Closed"))
        return false;
    if (guest::grant_table()->end_access(connection.ring_ref) != guest::GrantError::none)
        return fail("the ring's grant ended once the backend closed");
    (void)guest::close_port(disk.port);
    disk.ring = nullptr;
    connection.ring.reset();
    (void)guest::free_page(connection.ring_page);
    // Said before Closed is written, which lets the backend go on: the two lines keep their order.
    pvk_printf("blkfront: %s closed\n", disk.name);
    return guest::switch_state(store, disk.device, guest::XenbusState::closed) || fail("Closed written");
}

// Connects `device`, runs the checks, and closes it. Then comes back, as a frontend does after a
// kexec (Initialising again), and reads the disk back: the backend kept what was written.
bool run_device(guest::XenstoreClient& store, std::string_view device, std::uint32_t devid) {
    char backend_path[guest::xenbus_path_max], path[guest::xenbus_path_max];
    const auto peer = guest::read_other_end(store, device, guest::XenbusEnd::backend, backend_path);
    if (!peer)
        return fail("the device names its backend");
    Disk disk;
    disk.device = device;
    disk.backend = peer->path;
    disk.backend_id = peer->domain;
    disk.seed = guest::monotonic_ns() | 1;
    // The name the toolstack gave the disk (libxl's dev key), else its number.
    if (const auto name = store.read(join(path, disk.backend, "dev"), disk.name); !name)
        pvk_snprintf(disk.name, sizeof disk.name, "vbd %u", static_cast<unsigned>(devid));

    Connection first;
    if (!connect(store, disk, first))
        return false;
    pvk_printf("blkfront: %s: %lu sectors of %u bytes, %s, backend domain %u\n", disk.name,
               static_cast<unsigned long>(disk.sectors), sector_bytes, disk.read_only ? "read-only" : "read-write",
               disk.backend_id);
    const bool passed = exercise(disk);  // closed whatever it said
    if (!disconnect(store, disk, first) || !passed)
        return false;

    // The backend is Closed until it sees Initialising.
    const std::uint64_t sectors = disk.sectors;
    Connection again;
    if (!guest::switch_state(store, device, guest::XenbusState::initialising) ||
        !guest::wait_while_closed(store, disk.backend, guest::monotonic_ns() + 30 * second) ||
        !connect(store, disk, again))
        return fail("reconnected");
    if (disk.sectors != sectors)
        return fail("the same disk after reconnecting");
    const PassResult read = whole_disk(disk, abi::BLKIF_OP_READ);
    if (read.passed)
        pvk_printf("blkfront: reconnected to %s: its %lu sectors read back unchanged\n", disk.name,
                   static_cast<unsigned long>(disk.sectors));
    return disconnect(store, disk, again) && read.passed;
}

}  // namespace

int pvkit::guest::guest_main(const abi::start_info&) {
    if (!guest::setup() || pvk_console_init() != 0)
        return 1;
    guest::XenstoreClient* store = guest::xenstore();
    char domid[8], vbd_path[64];
    static char devids[abi::XENSTORE_PAYLOAD_MAX];
    const auto read = store != nullptr ? store->read("domid", domid) : guest::XsResult<std::size_t>{guest::XsErrc::eio};
    const auto self = read ? guest::parse_number({domid, *read}, 0x7fef) : guest::XsResult<std::uint64_t>{read.error()};
    if (!self) {
        pvk_printf("blkfront: needs the xenstore\n");
        return 1;
    }
    pvk_snprintf(vbd_path, sizeof vbd_path, "/local/domain/%u/device/vbd", static_cast<unsigned>(*self));
    const auto names = store->directory(vbd_path, devids);
    if (!names || names->count == 0) {
        pvk_printf("blkfront: no disk under %s\n", vbd_path);
        return 1;
    }
    for (Slot& slot : slots) {
        for (guest::Page& page : slot.pages) {
            page = guest::allocate_page();
            if (page.address == nullptr) {
                (void)fail("data pages for a ring's worth of requests");
                return 1;
            }
        }
    }
    bool passed = true;
    for (const std::string_view name : *names) {
        char device[guest::xenbus_path_max];
        const auto devid = guest::parse_number(name, 0xffff'ffff);
        const auto path = devid ? guest::frontend_device_path(device, static_cast<abi::domid_t>(*self), "vbd",
                                                              static_cast<std::uint32_t>(*devid))
                                : guest::XsErrc::einval;
        passed = path && run_device(*store, *path, static_cast<std::uint32_t>(*devid)) && passed;
    }
    (void)pvk_console_flush(guest::monotonic_ns() + second);
    return passed ? 0 : 1;
}
