"""libhv's side: typed argument packs, the dispatch table and hypercall names."""

from .headers import BANNER, Names
from .model import PRIMITIVES


def decoded_argument(spec, ref, register):
    """How the dispatcher turns one 64-bit register into the argument's type, truncating as Xen does."""
    if ref.handle_of:
        return f"{{{register}}}"
    base = ref.base
    while base in spec.typedefs:
        base = spec.typedefs[base].type.base
    return f"static_cast<{PRIMITIVES[base][1]}>({register})"


def argument_type(names, ref):
    def qualified(name):
        return names.scalar(name) if name in PRIMITIVES or name == "void" else f"abi::{name}"
    return f"abi::guest_handle<{qualified(ref.handle_of)}>" if ref.handle_of else qualified(ref.base)


def emit_dispatch(spec):
    names = Names(spec, cxx=True)
    calls = sorted(spec.hypercalls, key=lambda c: c.number)
    out = [f"// {BANNER}", "#pragma once", "", "#include <cstdint>", "#include <string_view>",
           "#include <type_traits>", "",
           "#include <pvkit/abi.hpp>", "", "namespace hv {", "", "namespace abi = pvkit::abi;", "",
           "// A hypercall as the guest issued it: the number from rax, arguments from rdi, rsi, rdx, r10, r8.",
           "struct HypercallRegisters {", "    std::uint64_t number;", "    std::uint64_t args[5];", "};", "",
           "// The typed arguments of each hypercall, decoded from its registers.",
           "namespace hypercall_args {"]
    for call in calls:
        out.append(f"struct {call.name} {{")
        out += [f"    {argument_type(names, a.type)} {a.name};" for a in call.args]
        out.append("};")
    out += ["}  // namespace hypercall_args", "",
            f"inline constexpr unsigned hypercall_table_size = {max(c.number for c in calls) + 1};", "",
            "// The name of hypercall `number`, or an empty view for a number the spec does not define.",
            "constexpr std::string_view hypercall_name(std::uint64_t number) {", "    switch (number) {"]
    out += [f'    case {c.number}: return "{c.name}";' for c in calls]
    out += ["    default: return {};", "    }", "}", "",
            "// Decodes the registers of hypercall `regs.number` into its typed arguments and calls the",
            "// member function of the same name: long Handlers::NAME(Caller&, const hypercall_args::NAME&).",
            "// A hypercall that Handlers has no member for, and a number the spec does not define, return",
            "// -XEN_ENOSYS; a member with the wrong signature does not compile.",
            "template <class Handlers, class Caller>",
            "long dispatch_hypercall(Handlers& handlers, Caller& caller, const HypercallRegisters& regs) {",
            "    constexpr long not_implemented = -static_cast<long>(abi::XEN_ENOSYS);",
            "    switch (regs.number) {"]
    for call in calls:
        decoded = ", ".join(decoded_argument(spec, a.type, f"regs.args[{i}]") for i, a in enumerate(call.args))
        out += [f"    case {call.number}:",
                f"        if constexpr (requires {{ &Handlers::{call.name}; }}) {{",
                f"            static_assert(std::is_invocable_r_v<long, decltype(&Handlers::{call.name}), Handlers&, "
                f"Caller&, const hypercall_args::{call.name}&>,",
                f'                          "Handlers::{call.name} must be long(Caller&, const hypercall_args::{call.name}&)");',
                f"            return handlers.{call.name}(caller, hypercall_args::{call.name}{{{decoded}}});",
                "        } else {",
                "            return not_implemented;",
                "        }"]
    out += ["    default:", "        return not_implemented;", "    }", "}", "", "}  // namespace hv", ""]
    return "\n".join(out)
