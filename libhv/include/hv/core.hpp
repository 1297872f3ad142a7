// Core vocabulary of every libhv component: Xen error codes, Result<T>, strong ids.
#pragma once

#include <compare>
#include <cstdint>
#include <type_traits>

#include <pvkit/abi.hpp>

namespace hv {

// Xen's error numbers (generated from hypercall-spec); a hypercall returns one negated.
using Errc = pvkit::abi::Errc;

constexpr long xen_errno(Errc error) { return -static_cast<long>(error); }

// The outcome of an operation that can fail: a value, or the Xen error that explains why not.
// Holds only trivially copyable values, which is all a hypervisor passes around, so that it
// needs no destructor logic and stays usable in freestanding code.
template <class T>
class [[nodiscard]] Result {
    static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);

public:
    constexpr Result(T value) : ok_{true}, value_{value} {}
    constexpr Result(Errc error) : ok_{false}, error_{error} {}

    constexpr explicit operator bool() const { return ok_; }
    constexpr bool has_value() const { return ok_; }
    constexpr const T& operator*() const { return value_; }
    constexpr const T* operator->() const { return &value_; }
    constexpr Errc error() const { return error_; }
    constexpr long xen_errno() const { return hv::xen_errno(error_); }

private:
    bool ok_;
    union {
        T value_;
        Errc error_;
    };
};

// The outcome of an operation that returns nothing but can fail.
template <>
class [[nodiscard]] Result<void> {
public:
    constexpr Result() = default;
    constexpr Result(Errc error) : ok_{false}, error_{error} {}

    constexpr explicit operator bool() const { return ok_; }
    constexpr bool has_value() const { return ok_; }
    constexpr Errc error() const { return error_; }
    constexpr long xen_errno() const { return ok_ ? 0 : hv::xen_errno(error_); }

private:
    bool ok_ = true;
    Errc error_{};
};

// A number that means one kind of thing. Two ids of different kinds never convert into each other.
template <class Tag, class Rep>
struct StrongId {
    Rep value;

    constexpr explicit StrongId(Rep v) : value{v} {}
    constexpr auto operator<=>(const StrongId&) const = default;
};

using Mfn = StrongId<struct MfnTag, std::uint64_t>;        // machine frame number
using Gfn = StrongId<struct GfnTag, std::uint64_t>;        // guest (pseudo-physical) frame number
using Vaddr = StrongId<struct VaddrTag, std::uint64_t>;    // guest virtual address
using DomId = StrongId<struct DomIdTag, pvkit::abi::domid_t>;
using Port = StrongId<struct PortTag, pvkit::abi::evtchn_port_t>;
using GrantRef = StrongId<struct GrantRefTag, pvkit::abi::grant_ref_t>;

}  // namespace hv
