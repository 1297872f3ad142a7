// The xenstore client's error names against Xen's io/xs_wire.h: every name of xsd_errors[] must be
// parsed back to its errno (the host's errno.h, whose numbers are Xen's for all of them), and an
// unknown name must be EIO. xs_wire.h's macros clash with the generated ABI's names, so the
// client is asked from another file (xenstore_errors_client.cpp).
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>

#include <xen/io/xs_wire.h>

int client_errno(const char* name);

int main() {
    int failures = 0;
    for (const struct xsd_errors& entry : xsd_errors) {
        const int parsed = client_errno(entry.errstring);
        if (parsed != entry.errnum) {
            std::printf("FAIL %s: xs_wire.h says %d, the client %d\n", entry.errstring, entry.errnum, parsed);
            ++failures;
        }
    }
    if (client_errno("ENOTANERROR") != EIO) {
        std::printf("FAIL an unknown name is not EIO\n");
        ++failures;
    }
    const std::size_t names = sizeof xsd_errors / sizeof xsd_errors[0];
    std::printf("%s: %zu names of xsd_errors\n", failures == 0 ? "PASS" : "FAIL", names);
    return failures == 0 ? 0 : 1;
}
