// The client's side of xenstore_errors_check.cpp.
#include "text.hpp"

int client_errno(const char* name) { return static_cast<int>(pvkit::guest::error_from_name(name)); }
