// pvk_main for C++ guests that define guest_main() instead. In its own object file, so that the
// linker takes it from the archive only when the guest defines no pvk_main of its own.
#include <guest/start.hpp>
#include <pvkit/guest.h>

extern "C" int pvk_main(const pvk_start_info* start_info) {
    return pvkit::guest::guest_main(*reinterpret_cast<const pvkit::abi::start_info*>(start_info));
}
