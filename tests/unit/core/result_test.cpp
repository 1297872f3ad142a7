#include <catch2/catch.hpp>

#include <hv/core.hpp>

using hv::Errc;
using hv::Result;

namespace {
Result<int> parse_digit(char c) {
    if (c < '0' || c > '9')
        return Errc::einval;
    return c - '0';
}
}  // namespace

TEST_CASE("core: a result holds either a value or the Xen error", "[core]") {
    const auto ok = parse_digit('7');
    REQUIRE(ok);
    CHECK(*ok == 7);

    const auto bad = parse_digit('x');
    REQUIRE_FALSE(bad);
    CHECK(bad.error() == Errc::einval);
    CHECK(bad.xen_errno() == -22);
}

TEST_CASE("core: Result<void> is success by default and carries the negated errno on failure", "[core]") {
    const Result<void> done;
    CHECK(done);
    CHECK(done.xen_errno() == 0);

    const Result<void> refused = Errc::eperm;
    CHECK_FALSE(refused);
    CHECK(refused.xen_errno() == -1);
}

TEST_CASE("core: error codes are Xen's numbers, not the host's", "[core]") {
    CHECK(hv::xen_errno(Errc::enosys) == -38);
    CHECK(hv::xen_errno(Errc::efault) == -14);
    CHECK(hv::xen_errno(Errc::eagain) == -11);
    CHECK(hv::xen_errno(Errc::enospc) == -28);
}

TEST_CASE("core: strong ids compare within their kind and do not mix", "[core]") {
    const hv::Mfn a{5}, b{9};
    CHECK(a < b);
    CHECK(a == hv::Mfn{5});
    STATIC_REQUIRE_FALSE(std::is_convertible_v<hv::Mfn, hv::Gfn>);
    STATIC_REQUIRE_FALSE(std::is_convertible_v<std::uint64_t, hv::Mfn>);
    STATIC_REQUIRE(sizeof(hv::DomId) == sizeof(std::uint16_t));
}
