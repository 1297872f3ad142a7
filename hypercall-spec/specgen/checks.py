"""tests/abi: every generated item checked at compile time against Debian's /usr/include/xen."""

from .headers import BANNER, stubbed, subop_wrappers

XEN_SIGNEDNESS = "(((%s)-1) > 0)"  # true for unsigned types


def field_paths(spec, aggregate, prefix=""):
    """(dotted member path, expression of its scalar part or None, spec location) for each member of
    an aggregate, descending into members that have no Xen name. The scalar part is an integer
    member or array element, or the object a guest handle points at (its type is checked too)."""
    for item in aggregate.fields:
        path = prefix + item.name
        element = path + "[0]" * len(item.type.dims)
        inner = spec.aggregates.get(item.type.base) if not item.type.handle_of else None
        if item.type.handle_of:
            target = item.type.handle_of
            scalar = None if target == "void" or target in spec.aggregates else f"*{{}}->{path}.p"
        else:
            scalar = None if inner is not None else f"{{}}->{element}"
        yield path, scalar, item.where
        if inner is not None and not inner.xen:
            yield from field_paths(spec, inner, element + ".")


def emit_abi_check(spec):
    out = [f"/* {BANNER} */",
           "/* Compile with -D__XEN_INTERFACE_VERSION__=__XEN_LATEST_INTERFACE_VERSION__. */",
           "#include <stddef.h>", "#include <stdio.h>", "#include <stdint.h>", ""]
    out += [f"#include <{header}>" for header in spec.xen_headers]
    out += ["", "#include <pvkit/xen-abi.h>", "",
            "/* Each check names the spec line it comes from. */",
            "#define SAME(where, ours, xens) _Static_assert((ours) == (xens), where \": \" #ours \" == \" #xens)",
            ""]
    counts = {"constants": 0, "types": 0, "members": 0}
    for constant in spec.constants.values():
        if constant.xen:
            out.append(f'SAME("{constant.where}", PVK_{constant.name}, {constant.xen});')
            counts["constants"] += 1
    for call in spec.hypercalls:
        out.append(f'SAME("{call.where}", PVK_HYPERVISOR_{call.name}, {call.xen});')
        counts["constants"] += 1
    out.append("")
    for typedef in spec.typedefs.values():
        ours, xens, at = f"pvk_{typedef.name}", typedef.xen, f'"{typedef.where}"'
        out += [f"SAME({at}, sizeof({ours}), sizeof({xens}));", f"SAME({at}, _Alignof({ours}), _Alignof({xens}));",
                f"SAME({at}, {XEN_SIGNEDNESS % ours}, {XEN_SIGNEDNESS % xens});"]
        counts["types"] += 1
    for aggregate in spec.aggregates.values():
        if not aggregate.xen:
            continue
        ours, xens, at = f"{aggregate.kind} pvk_{aggregate.name}", aggregate.xen, f'"{aggregate.where}"'
        out += [f"SAME({at}, sizeof({ours}), sizeof({xens}));", f"SAME({at}, _Alignof({ours}), _Alignof({xens}));"]
        counts["types"] += 1
        for path, scalar, where in field_paths(spec, aggregate):
            at = f'"{where}"'
            out += [f"SAME({at}, offsetof({ours}, {path}), offsetof({xens}, {path}));",
                    f"SAME({at}, sizeof((({ours} *)0)->{path}), sizeof((({xens} *)0)->{path}));"]
            if scalar:
                mine, theirs = scalar.format(f"(({ours} *)0)"), scalar.format(f"(({xens} *)0)")
                out += [f"SAME({at}, sizeof({mine}), sizeof({theirs}));",
                        f"SAME({at}, {XEN_SIGNEDNESS % f'__typeof__({mine})'}, "
                        f"{XEN_SIGNEDNESS % f'__typeof__({theirs})'});"]
            counts["members"] += 1
    out += ["", "/* Every stub, so that its inline assembly is assembled and linked (tests/unit calls them). */",
            "char pvk_hypercall_page[4096];", "static const void *const stubs[] = {"]
    stub_names = [f"pvk_hypercall_{c.name}" for c in stubbed(spec)]
    stub_names += [f"pvk_{constant.name.lower()}" for constant, _, _, _ in subop_wrappers(spec)]
    out += [f"    (const void *){name}," for name in stub_names]
    out += ["};", "", "int main(void)", "{",
            f'    printf("abi: %d constants, %d types, %d members match Xen\'s headers; %zu stubs link\\n",',
            f'           {counts["constants"]}, {counts["types"]}, {counts["members"]}, '
            "sizeof(stubs) / sizeof(stubs[0]));",
            "    return 0;", "}", ""]
    return "\n".join(out)

