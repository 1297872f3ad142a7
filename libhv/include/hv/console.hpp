// The console: what each domain writes becomes prefixed lines on the platform's console, the
// privileged domain reads the serial input, and the PV console ring of io/console.h is served
// from inside the hypervisor.
//
// Three parts, usable alone or together:
// - DomainConsole turns one domain's bytes into whole lines "(name) text\n" on a ConsoleSink,
//   with every byte that could drive the operator's terminal replaced (domain_console.cpp).
// - console_io is the hypercall (CONSOLEIO_write, CONSOLEIO_read) for one calling domain, with
//   ConsoleInput as the bounded FIFO of serial input it reads from (console_io.cpp, input.cpp).
// - ConsoleRing serves one domain's xencons_interface page: output into its DomainConsole, input
//   from a ConsoleInput (ring.cpp, whose opening comment states the ring rules kept).
// Nothing here locks: the embedder serializes the calls on one object (docs/console.md).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include <hv/continuation.hpp>
#include <hv/core.hpp>
#include <hv/guest_memory.hpp>
#include <hv/hypercall_dispatch.hpp>

namespace hv::console {

namespace abi = pvkit::abi;

// Where console text goes: the platform's serial port, a test's string, ... Each call carries
// whole lines, each ended by '\n', so lines of different domains never interleave on a sink that
// writes one call at a time.
class ConsoleSink {
public:
    virtual void write(std::string_view text) = 0;

protected:
    ~ConsoleSink() = default;
};

// Longest domain name shown in the prefix; longer names are cut to this many bytes.
inline constexpr std::size_t max_name_length = 32;
// Longest line text, prefix not counted; a longer line is split into lines of this length.
inline constexpr std::size_t line_capacity = 128;
// What a byte that could drive a terminal is shown as.
inline constexpr char placeholder = '?';

// What a guest byte becomes on the operator's console. Printable ASCII (0x20 to 0x7e) and '\t'
// pass; '\n' ends the line; '\r' is dropped (guests end lines with "\r\n"); every other byte (the
// other C0 controls with ESC among them, DEL, and all bytes >= 0x80, where C1 controls such as
// 0x9b, an 8-bit CSI, live) becomes the placeholder, one for one.
enum class ByteClass : std::uint8_t { text, newline, dropped, replaced };
constexpr ByteClass classify(char c) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte == '\n')
        return ByteClass::newline;
    if (byte == '\r')
        return ByteClass::dropped;
    if (byte == '\t' || (byte >= 0x20 && byte <= 0x7e))
        return ByteClass::text;
    return ByteClass::replaced;
}

// One domain's console output. Bytes become lines on the sink, each prefixed "(name) ". A line
// is emitted at '\n', or when a byte arrives for a line already line_capacity long (so a line of
// exactly line_capacity bytes and its '\n' stay one line). flush() emits a partial line, ended by
// '\n'; call it when the domain shuts down or is torn down, so that its last words are seen.
class DomainConsole {
public:
    // The name is kept (cut to max_name_length bytes) with every byte that is not printable
    // ASCII replaced by the placeholder, '\t' included: the prefix is one plain word.
    DomainConsole(ConsoleSink& sink, std::string_view name);
    DomainConsole(const DomainConsole&) = delete;
    DomainConsole& operator=(const DomainConsole&) = delete;

    void write(std::span<const char> bytes);
    void flush();

    std::string_view name() const { return {name_.data(), name_length_}; }
    // The text of the partial line waiting for its '\n' (already escaped).
    std::string_view pending() const { return {line_.data(), line_length_}; }
    ConsoleSink& sink() { return sink_; }

private:
    void emit_line();

    ConsoleSink& sink_;
    std::array<char, max_name_length> name_{};
    std::size_t name_length_ = 0;
    std::array<char, line_capacity> line_{};
    std::size_t line_length_ = 0;
};

// Console input for the privileged domain (CONSOLEIO_read) or for a domain's ring: a FIFO of
// input_capacity bytes the platform pushes serial input into. After pushing, the platform tells
// the reader whether or not the byte fitted (VIRQ_CONSOLE to the console domain, or a
// ConsoleRing::service pass), so that a reader that missed an event cannot stay stuck.
class ConsoleInput {
public:
    static constexpr std::size_t input_capacity = 128;

    // False when full: the byte is dropped.
    bool push(char c);
    // Moves up to into.size() bytes out, oldest first; returns how many.
    std::size_t pop(std::span<char> into);
    // The oldest bytes as one contiguous run (empty when there are none), and dropping them once
    // they have been delivered: for a reader that may fail half-way and must not lose what it
    // could not deliver.
    std::span<const char> front() const;
    void discard(std::size_t count);

    std::size_t size() const { return tail_ - head_; }
    bool empty() const { return tail_ == head_; }
    bool full() const { return size() == input_capacity; }

private:
    static_assert((input_capacity & (input_capacity - 1)) == 0);

    std::array<char, input_capacity> bytes_{};
    std::uint32_t head_ = 0;  // free-running: the oldest byte is bytes_[head_ % input_capacity]
    std::uint32_t tail_ = 0;  // free-running: the next byte goes to bytes_[tail_ % input_capacity]
};

// console_io writes the guest's buffer in chunks of this many bytes, checking for preemption
// between chunks.
inline constexpr std::uint32_t console_io_chunk = 128;

// The console_io hypercall (number 18) for one calling domain.
struct ConsoleIoCaller {
    DomainConsole& console;    // where CONSOLEIO_write goes
    GuestMemory& memory;       // the caller's address space
    bool may_write;            // CONSOLEIO_write allowed
    ConsoleInput* input;       // CONSOLEIO_read reads this; nullptr: the domain may not read
    Preemption& preemption;
    Continuation& continuation;
};

// Permissions, as Xen's dummy XSM policy: a domain given the input (the console or privileged
// domain) may use every command, so an unknown one gets enosys; any other domain gets eperm for
// all but CONSOLEIO_write, which needs may_write (Xen allows it to every domain only in debug
// builds). Checked before anything else.
// CONSOLEIO_write: copies `count` bytes from `buffer` into the caller's DomainConsole in chunks
// of console_io_chunk; returns 0, or efault for a chunk that cannot be read (earlier chunks stay
// written). After a chunk, when preemption is pending, it fills `continuation` (console_io,
// CONSOLEIO_write, the bytes left, the buffer advanced past what was written) and returns 0.
// CONSOLEIO_read: copies up to `count` bytes of input into `buffer` and returns how many; e2big
// for a count above INT32_MAX (Xen keeps counts and errors apart); efault when a byte cannot be
// written, the bytes delivered before it being consumed.
long console_io(ConsoleIoCaller& caller, const hypercall_args::console_io& args);

// What a ConsoleRing::service pass did, and what its caller must do.
struct [[nodiscard]] ServiceResult {
    bool notify = false;         // signal the guest through its console event channel
    std::uint32_t consumed = 0;  // bytes taken from out[] into the DomainConsole
    std::uint32_t produced = 0;  // bytes put into in[] from the ConsoleInput
    bool broken = false;         // the ring is broken (now or earlier): nothing was done
};

// The backend of a domain's PV console ring (io/console.h): the xencons_interface page, mapped
// by the embedder for as long as this object lives. The backend owns out_cons and in_prod and
// keeps them itself, taking their values from the page once, at construction; the guest owns
// out_prod and in_cons, which are read once per pass. Indexes that claim more bytes than a ring
// holds make the ring broken for good: no byte of the page is read or written again.
class ConsoleRing {
public:
    ConsoleRing(abi::xencons_interface& page, DomainConsole& console);
    ConsoleRing(const ConsoleRing&) = delete;
    ConsoleRing& operator=(const ConsoleRing&) = delete;

    // Takes what the guest produced in out[] into the DomainConsole and moves out_cons, then
    // moves what fits of `input` (nullptr: none) into in[] and moves in_prod. Call it when the
    // guest signals the console event channel and when input is pushed for this domain.
    ServiceResult service(ConsoleInput* input = nullptr);

    bool broken() const { return broken_; }
    DomainConsole& console() { return console_; }

private:
    void take_output(std::uint32_t count);
    std::uint32_t give_input(ConsoleInput& input, std::uint32_t space);

    abi::xencons_interface& page_;
    DomainConsole& console_;
    abi::XENCONS_RING_IDX out_cons_;  // the backend's own copy; the page's is only a report
    abi::XENCONS_RING_IDX in_prod_;   // likewise
    bool broken_ = false;
};

}  // namespace hv::console
