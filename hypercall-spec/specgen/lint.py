"""Checks that need the whole spec: types resolve, sub-ops match their hypercalls, names are usable."""

from .model import IDENT, PRIMITIVES, dimension, enumerator, parse_type


def check_type(spec, ref, where, what, problems):
    if ref.handle_of:
        target = ref.handle_of
        if target != "void" and target not in PRIMITIVES and target not in spec.typedefs \
                and target not in spec.aggregates:
            problems.append(f"{where}: {what}: handle<{target}>: no type named '{target}'")
    elif ref.base not in PRIMITIVES and ref.base not in spec.typedefs and ref.base not in spec.aggregates:
        problems.append(f"{where}: {what}: no type named '{ref.base}'")
    for dim in ref.dims:
        if not dim.isdigit() and dim not in spec.constants:
            problems.append(f"{where}: {what}: array size '{dim}' is neither a number nor a constant")
        elif dimension(spec, dim) <= 0:
            problems.append(f"{where}: {what}: array size '{dim}' must be positive")


def integer_base(spec, name):
    """The primitive an integer type name stands for, or None (not an integer, or a typedef cycle)."""
    seen = set()
    while name in spec.typedefs and name not in seen:
        seen.add(name)
        name = spec.typedefs[name].type.base
    return name if name in PRIMITIVES else None


def lint(spec, problems):
    for typedef in spec.typedefs.values():
        check_type(spec, typedef.type, typedef.where, f"typedef {typedef.name}", problems)
        if integer_base(spec, typedef.name) is None:
            problems.append(f"{typedef.where}: typedef {typedef.name}: must name an integer type "
                            f"(a primitive or another typedef, without a cycle)")
    if problems:
        return  # everything below resolves typedefs
    for aggregate in spec.aggregates.values():
        for item in aggregate.fields:
            check_type(spec, item.type, item.where, f"{aggregate.name}.{item.name}", problems)
    groups = {g.name: g for g in spec.groups}
    calls = {h.name: h for h in spec.hypercalls}
    for call in spec.hypercalls:
        for arg in call.args:
            check_type(spec, arg.type, arg.where, f"hypercall {call.name} argument {arg.name}", problems)
            if arg.type.dims:
                problems.append(f"{arg.where}: hypercall {call.name}: argument {arg.name} cannot be an array")
            elif arg.type.base in spec.aggregates:
                problems.append(f"{arg.where}: hypercall {call.name}: argument {arg.name} passes a "
                                f"structure by value; use handle<{arg.type.base}>")
        if call.subops and (call.subops not in groups or not groups[call.subops].hypercall):
            problems.append(f"{call.where}: hypercall {call.name}: no [[subops]] group '{call.subops}'")
        if call.subops and (not call.args or call.args[0].type.handle_of or call.args[0].type.dims
                            or integer_base(spec, call.args[0].type.base) is None):
            problems.append(f"{call.where}: hypercall {call.name}: with sub-ops, its first argument must be "
                            f"the integer command")
    for group in spec.subop_groups():
        call = calls.get(group.hypercall)
        if call is None:
            problems.append(f"{group.where}: [[subops]] {group.name}: no hypercall '{group.hypercall}'")
        elif call.subops != group.name:
            problems.append(f"{group.where}: [[subops]] {group.name}: hypercall {call.name} "
                            f"does not name it (subops = \"{group.name}\")")
        values = {}
        for constant in group.constants:
            if constant.value in values:
                problems.append(f"{constant.where}: sub-op {constant.name} has the value {constant.value} "
                                f"of {values[constant.value]}")
            values[constant.value] = constant.name
            arg = group.arg_types[constant.name]
            parsed = parse_type(arg) if arg else None
            if arg and (parsed is None or parsed.dims or parsed.handle_of):
                problems.append(f"{constant.where}: sub-op {constant.name}: the argument type '{arg}' must be "
                                f"a type name (the wrapper passes a pointer to it)")
            elif arg:
                check_type(spec, parse_type(arg), constant.where, f"sub-op {constant.name}", problems)
    for group in spec.groups:
        if group.cxx_enum:
            for constant in group.constants:
                if not IDENT.match(enumerator(group, constant)):
                    problems.append(f"{constant.where}: {constant.name}: enumerator "
                                    f"'{enumerator(group, constant)}' is not an identifier")
    _lint_anonymous(spec, problems)


def _lint_anonymous(spec, problems):
    """An aggregate without a Xen name must sit inside one that has a name, or nothing checks it."""
    reached = set()

    def visit(name):
        for item in spec.aggregates[name].fields:
            inner = item.type.base
            if inner in spec.aggregates and not spec.aggregates[inner].xen and inner not in reached:
                reached.add(inner)
                visit(inner)

    for aggregate in spec.aggregates.values():
        if aggregate.xen:
            visit(aggregate.name)
    for aggregate in spec.aggregates.values():
        if not aggregate.xen and aggregate.name not in reached:
            problems.append(f"{aggregate.where}: {aggregate.kind} {aggregate.name} has no Xen name and "
                            f"no Xen-named structure contains it, so nothing checks its layout")
