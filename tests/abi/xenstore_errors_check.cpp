// The xenstore client's error names against Xen's io/xs_wire.h: every name of xsd_errors[] must be
// parsed back to its errno (the host's errno.h, whose numbers are Xen's for all of them), and the
// client must know no name that list does not have.
#include <cerrno>
#include <cstdio>

#include <xen/io/xs_wire.h>

#include "text.hpp"

int main() {
    int failures = 0;
    for (const xsd_errors& entry : xsd_errors) {
        const auto parsed = static_cast<int>(pvkit::guest::error_from_name(entry.errstring));
        if (parsed != entry.errnum) {
            std::printf("FAIL %s: xs_wire.h says %d, the client %d\n", entry.errstring, entry.errnum, parsed);
            ++failures;
        }
    }
    // An unknown name is EIO, which xs_wire.h lists too.
    if (pvkit::guest::error_from_name("ENOTANERROR") != pvkit::guest::XsErrc::eio) {
        std::printf("FAIL an unknown name is not EIO\n");
        ++failures;
    }
    const std::size_t names = sizeof xsd_errors / sizeof xsd_errors[0];
    std::printf("%s: %zu names of xsd_errors\n", failures == 0 ? "PASS" : "FAIL", names);
    return failures == 0 ? 0 : 1;
}
