"""Structure layout on x86-64 (LP64, natural alignment), computed by the generator itself."""

from .model import HANDLE_SIZE, PRIMITIVES, dimension


def size_align(spec, ref):
    """Size and alignment of a type on x86-64 (LP64, natural alignment)."""
    if ref.handle_of:
        size, align = HANDLE_SIZE, HANDLE_SIZE
    elif ref.base in PRIMITIVES:
        size = align = PRIMITIVES[ref.base][2]
    elif ref.base in spec.typedefs:
        size, align = size_align(spec, spec.typedefs[ref.base].type)
    else:
        aggregate = spec.aggregates[ref.base]
        size, align = aggregate.size, aggregate.align
    for dim in ref.dims:
        size *= dimension(spec, dim)
    return size, align


def lay_out_all(spec, problems):
    done, active = set(), set()

    def lay_out(aggregate):
        if aggregate.name in done:
            return
        if aggregate.name in active:
            problems.append(f"{aggregate.where}: {aggregate.kind} {aggregate.name} contains itself")
            return
        active.add(aggregate.name)
        for item in aggregate.fields:
            inner = spec.typedefs[item.type.base].type.base if item.type.base in spec.typedefs else item.type.base
            if not item.type.handle_of and inner in spec.aggregates:
                lay_out(spec.aggregates[inner])
        offset, align = 0, 1
        for item in aggregate.fields:
            size, item_align = size_align(spec, item.type)
            align = max(align, item_align)
            if aggregate.kind == "struct":
                offset = -(-offset // item_align) * item_align
                aggregate.offsets[item.name] = offset
                offset += size
            else:
                aggregate.offsets[item.name] = 0
                offset = max(offset, size)
        aggregate.align = align
        aggregate.size = -(-offset // align) * align
        active.discard(aggregate.name)
        done.add(aggregate.name)

    for aggregate in spec.aggregates.values():
        lay_out(aggregate)


def definition_order(spec):
    """Aggregates ordered so that each comes after every aggregate it holds by value."""
    ordered, seen = [], set()

    def visit(aggregate):
        if aggregate.name in seen:
            return
        seen.add(aggregate.name)
        for item in aggregate.fields:
            base = item.type.base
            if base in spec.typedefs:
                base = spec.typedefs[base].type.base
            if base in spec.aggregates:
                visit(spec.aggregates[base])
        ordered.append(aggregate)

    for aggregate in spec.aggregates.values():
        visit(aggregate)
    return ordered
