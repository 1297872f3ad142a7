// The console at run time (guest/console.hpp): console_io until the ring is set up, then the PV
// console ring with flow control; pvk_printf and the rest of pvkit/console.h.
#include <guest/console.hpp>
#include <guest/evtchn.hpp>
#include <guest/start.hpp>
#include <pvkit/format.h>
#include <pvkit/guest.h>
#include <pvkit/hypercalls.hpp>

#include <new>

namespace pvkit::guest {

namespace {
alignas(ConsoleRing) unsigned char ring_storage[sizeof(ConsoleRing)];
ConsoleRing* ring = nullptr;
EventPort ring_port = 0;

bool write_console_io(std::span<const char> bytes) {
    // console_io only reads the buffer; the stub's type is not const.
    return hypercall::consoleio_write(static_cast<std::uint32_t>(bytes.size()), const_cast<char*>(bytes.data())) == 0;
}
}  // namespace

bool console_init() {
    if (ring != nullptr)
        return true;
    const abi::start_info& info = start_info();
    if ((info.flags & abi::SIF_INITDOMAIN) != 0 || info.console.domU.mfn == 0)
        return false;
    void* page = mfn_to_virt(info.console.domU.mfn);
    if (page == nullptr || !events_setup())
        return false;
    ring_port = info.console.domU.evtchn;
    (void)event_channels()->mask(ring_port);  // waited for, never upcalled
    ring = new (ring_storage) ConsoleRing(*static_cast<abi::xencons_interface*>(page));
    return true;
}

bool console_write(std::span<const char> bytes) {
    if (ring == nullptr)
        return write_console_io(bytes);
    while (!bytes.empty()) {
        const std::size_t written = ring->write(bytes);
        bytes = bytes.subspan(written);
        if (written != 0)
            (void)notify(ring_port);
        if (ring->broken())
            return false;
        if (!bytes.empty())  // full: the back end notifies when it has consumed some
            (void)wait(ring_port, 0);
    }
    return true;
}

bool console_flush(std::uint64_t deadline_ns) {
    if (ring == nullptr)
        return true;
    while (!ring->drained()) {
        if (ring->broken() || !wait(ring_port, deadline_ns))
            return ring->drained();
    }
    return true;
}

std::size_t console_read(std::span<char> buffer, std::uint64_t deadline_ns) {
    if (ring == nullptr || buffer.empty())
        return 0;
    for (;;) {
        const std::size_t count = ring->read(buffer);
        if (count != 0) {
            (void)notify(ring_port);  // room in in[] again
            return count;
        }
        if (ring->broken() || !wait(ring_port, deadline_ns))
            return ring->read(buffer);
    }
}

}  // namespace pvkit::guest

using namespace pvkit::guest;

namespace {
void print_piece(void* failed, const char* text, std::size_t length) {
    if (!console_write({text, length}))
        *static_cast<bool*>(failed) = true;
}
}  // namespace

extern "C" {
int pvk_console_init(void) { return console_init() ? 0 : -1; }
int pvk_console_write(const char* text, size_t length) { return console_write({text, length}) ? 0 : -1; }
int pvk_console_flush(uint64_t deadline_ns) { return console_flush(deadline_ns) ? 0 : -1; }
size_t pvk_console_read(char* buffer, size_t capacity, uint64_t deadline_ns) {
    return console_read({buffer, capacity}, deadline_ns);
}
int pvk_vprintf(const char* format, va_list arguments) {
    bool failed = false;
    const int length = pvk_vformat(print_piece, &failed, format, arguments);
    return failed ? -1 : length;
}
int pvk_printf(const char* format, ...) {
    va_list arguments;
    va_start(arguments, format);
    const int length = pvk_vprintf(format, arguments);
    va_end(arguments);
    return length;
}
}
