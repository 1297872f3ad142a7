// Start of day in C++: the start_info page kept, constructors, the guest's main function (pvk_main,
// or guest_main through guest_main.cpp), and a shutdown that says how it went.
#include <pvkit/guest.h>
#include <pvkit/hypercalls.hpp>
#include <guest/start.hpp>

namespace {
const pvk_start_info* saved_start_info = nullptr;

using Constructor = void (*)();
extern "C" Constructor __init_array_start[], __init_array_end[];

void run_constructors() {
    for (Constructor* constructor = __init_array_start; constructor != __init_array_end; ++constructor)
        (*constructor)();
}

}  // namespace

extern "C" const pvk_start_info* pvk_start_info_page(void) { return saved_start_info; }

namespace pvkit::guest {
const abi::start_info& start_info() { return *reinterpret_cast<const abi::start_info*>(saved_start_info); }

void shut_down(abi::ShutdownReason reason) {
    abi::sched_shutdown request{static_cast<unsigned>(reason)};
    for (;;)  // SCHEDOP_shutdown does not return; if a broken hypervisor lets it, ask again
        hypercall::schedop_shutdown(&request);
}
}  // namespace pvkit::guest

extern "C" [[noreturn]] void pvk_start(const pvk_start_info* start_info) {
    saved_start_info = start_info;
    run_constructors();
    const int status = pvk_main(start_info);
    pvkit::guest::shut_down(status == 0 ? pvkit::abi::ShutdownReason::poweroff : pvkit::abi::ShutdownReason::crash);
}
