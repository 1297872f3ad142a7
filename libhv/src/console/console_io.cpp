// console_io: a domain writes to its console, and the console domain reads the serial input.
//
// Permissions come first, as Xen's dummy XSM policy checks them before looking at the command:
// a domain given the input (ConsoleIoCaller::input, Xen's console or privileged domain) is
// allowed every command; another domain only CONSOLEIO_write, and only with may_write.
//
// A write is bounded work per step: console_io_chunk bytes are copied in and written out, then,
// if preemption is pending and at least one chunk went out (so every issue makes progress), the
// rest is handed to a continuation. The continuation's buffer and count describe exactly the
// bytes not yet written, so the output of a write that was preempted any number of times is the
// output of one that was not.
#include <algorithm>
#include <climits>

#include <hv/console.hpp>

namespace hv::console {
namespace {

constexpr long failure(Errc error) { return xen_errno(error); }

long write_to_console(ConsoleIoCaller& caller, std::uint32_t count, GuestHandle<char> buffer) {
    std::array<char, console_io_chunk> chunk;
    std::uint32_t done = 0;
    while (done < count) {
        if (done > 0 && caller.preemption.pending()) {
            caller.continuation = {true,
                                   {abi::HYPERVISOR_console_io,
                                    {abi::CONSOLEIO_write, count - done, buffer.address + done, 0, 0}}};
            return 0;
        }
        const std::span<char> bytes = std::span{chunk}.first(std::min(count - done, console_io_chunk));
        if (!copy_array_from_guest(caller.memory, buffer, done, bytes))
            return failure(Errc::efault);
        caller.console.write(bytes);
        done += static_cast<std::uint32_t>(bytes.size());
    }
    return 0;
}

// Byte by byte: a byte leaves the FIFO only once it is in the guest's buffer, so a fault loses
// nothing the guest was not given. At most ConsoleInput::input_capacity bytes are pending.
long read_from_input(ConsoleInput& input, GuestMemory& memory, std::uint32_t count, GuestHandle<char> buffer) {
    if (count > static_cast<std::uint32_t>(INT32_MAX))
        return failure(Errc::e2big);  // the byte count must not look like an error
    std::uint32_t copied = 0;
    while (copied < count && !input.empty()) {
        if (!copy_to_guest(memory, buffer, input.front()[0], copied))
            return failure(Errc::efault);
        input.discard(1);
        ++copied;
    }
    return copied;
}

}  // namespace

long console_io(ConsoleIoCaller& caller, const hypercall_args::console_io& args) {
    const bool holds_console = caller.input != nullptr;
    switch (args.cmd) {
    case abi::CONSOLEIO_write:
        if (!caller.may_write)
            return failure(Errc::eperm);
        return write_to_console(caller, args.count, args.buffer);
    case abi::CONSOLEIO_read:
        if (!holds_console)
            return failure(Errc::eperm);
        return read_from_input(*caller.input, caller.memory, args.count, args.buffer);
    default:
        return failure(holds_console ? Errc::enosys : Errc::eperm);
    }
}

}  // namespace hv::console
