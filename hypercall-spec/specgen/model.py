"""Load, lint and lay out the hypercall spec.

The spec is every spec/*.toml file, read in name order as one document. Loading never raises a
Python traceback at the user: every problem becomes a SpecError carrying `file:line: message`.
"""

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PRIMITIVES = {  # name: (C type, C++ type, size, signed)
    "u8": ("uint8_t", "std::uint8_t", 1, False),
    "u16": ("uint16_t", "std::uint16_t", 2, False),
    "u32": ("uint32_t", "std::uint32_t", 4, False),
    "u64": ("uint64_t", "std::uint64_t", 8, False),
    "i8": ("int8_t", "std::int8_t", 1, True),
    "i16": ("int16_t", "std::int16_t", 2, True),
    "i32": ("int32_t", "std::int32_t", 4, True),
    "i64": ("int64_t", "std::int64_t", 8, True),
    "char": ("char", "char", 1, True),
}
HANDLE_SIZE = 8
MAX_HYPERCALL_ARGS = 5  # rdi, rsi, rdx, r10, r8
MAX_HYPERCALL_NUMBER = 63
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TYPE_SYNTAX = re.compile(r"^(?:handle<(?P<target>[A-Za-z_][A-Za-z0-9_]*)>|(?P<base>[A-Za-z_][A-Za-z0-9_]*))"
                         r"(?P<dims>(?:\[[A-Za-z0-9_]+\])*)$")


class SpecError(Exception):
    """One or more `file:line: message` problems."""

    def __init__(self, problems):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Where:
    file: str
    line: int

    def __str__(self):
        return f"{self.file}:{self.line}"


@dataclass
class Constant:
    name: str
    value: int
    xen: str
    doc: str
    group: str
    where: Where


@dataclass
class ConstantGroup:
    name: str
    doc: str
    cxx_enum: str
    enum_strip: str
    constants: list
    where: Where
    hypercall: str = ""  # set for [[subops]] groups
    arg_types: dict = field(default_factory=dict)  # sub-op name -> argument type ("" = none)


@dataclass
class TypeRef:
    """A parsed type expression: base name or handle target, plus array dimensions."""
    text: str
    base: str = ""
    handle_of: str = ""
    dims: tuple = ()


@dataclass
class Field:
    name: str
    type: TypeRef
    doc: str
    where: Where


@dataclass
class Aggregate:
    name: str
    kind: str  # "struct" or "union"
    xen: str
    doc: str
    fields: list
    where: Where
    size: int = 0
    align: int = 1
    offsets: dict = field(default_factory=dict)


@dataclass
class Typedef:
    name: str
    type: TypeRef
    xen: str
    doc: str
    where: Where


@dataclass
class Hypercall:
    name: str
    number: int
    args: list  # of Field
    subops: str
    doc: str
    where: Where

    @property
    def xen(self):
        return f"__HYPERVISOR_{self.name}"


@dataclass
class Spec:
    files: list
    xen_headers: list
    typedefs: dict
    groups: list  # ConstantGroup, constants and sub-ops in spec order
    constants: dict
    aggregates: dict  # name -> Aggregate, in spec order
    hypercalls: list

    def subop_groups(self):
        return [g for g in self.groups if g.hypercall]

    def group(self, name):
        return next(g for g in self.groups if g.name == name)


class _Locator:
    """Finds the line of an entry or of a quoted name inside it, for error messages."""

    def __init__(self, path, text):
        self.path = path
        self.lines = text.splitlines()

    def entry(self, header, key, name, start=1):
        inside = False
        for number, line in enumerate(self.lines[start - 1:], start):
            stripped = line.strip()
            if stripped.startswith("[["):
                inside = stripped == f"[[{header}]]"
            elif inside and re.match(rf'^{key}\s*=\s*"{re.escape(name)}"', stripped):
                return Where(self.path, number)
        return Where(self.path, 1)

    def word(self, word, after):
        for number, line in enumerate(self.lines[after.line - 1:], after.line):
            if f'"{word}"' in line:
                return Where(self.path, number)
        return after


KNOWN_KEYS = {
    "typedef": {"name", "type", "xen", "doc"},
    "constants": {"group", "doc", "cxx_enum", "enum_strip", "values"},
    "subops": {"group", "hypercall", "doc", "values"},
    "struct": {"name", "xen", "doc", "fields"},
    "union": {"name", "xen", "doc", "fields"},
    "hypercall": {"name", "number", "args", "subops", "doc"},
}
TOP_LEVEL_KEYS = set(KNOWN_KEYS) | {"xen_headers"}


def load(spec_dir):
    spec_dir = Path(spec_dir)
    problems = []
    spec = Spec([], [], {}, [], {}, {}, [])
    paths = sorted(spec_dir.glob("*.toml"))
    if not paths:
        raise SpecError([f"{spec_dir}: no *.toml files"])
    for path in paths:
        shown = str(path)
        text = path.read_text(encoding="utf-8")
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            match = re.search(r"\(at line (\d+), column \d+\)", str(error))
            line = match.group(1) if match else "1"
            message = re.sub(r"\s*\(at line.*\)", "", str(error))
            problems.append(f"{shown}:{line}: TOML syntax: {message}")
            continue
        spec.files.append(shown)
        _read_document(spec, document, _Locator(shown, text), problems)
    if not problems:
        _lint(spec, problems)
    if not problems:
        _lay_out(spec, problems)
    if problems:
        raise SpecError(problems)
    return spec


def _read_document(spec, document, locate, problems):
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            problems.append(f"{locate.path}:1: unknown top-level key '{key}' "
                            f"(expected one of {', '.join(sorted(TOP_LEVEL_KEYS))})")
    spec.xen_headers += document.get("xen_headers", [])
    for kind, entries in document.items():
        if kind not in KNOWN_KEYS:
            continue
        if not isinstance(entries, list):
            problems.append(f"{locate.path}:1: '{kind}' must be written [[{kind}]]")
            continue
        for entry in entries:
            key = "group" if kind in ("constants", "subops") else "name"
            name = entry.get(key)
            where = locate.entry(kind, key, name) if isinstance(name, str) else Where(locate.path, 1)
            if not isinstance(name, str) or not IDENT.match(name):
                problems.append(f"{where}: [[{kind}]] needs {key} = \"identifier\"")
                continue
            unknown = set(entry) - KNOWN_KEYS[kind]
            if unknown:
                problems.append(f"{where}: [[{kind}]] {name}: unknown key(s) {', '.join(sorted(unknown))}")
            reader = {"typedef": _read_typedef, "constants": _read_constants, "subops": _read_constants,
                      "struct": _read_aggregate, "union": _read_aggregate, "hypercall": _read_hypercall}
            reader[kind](spec, kind, entry, where, locate, problems)


def _doc(entry, where, problems):
    doc = entry.get("doc", "")
    if not isinstance(doc, str):
        problems.append(f"{where}: doc must be a string")
        return ""
    return doc


def parse_type(text):
    match = TYPE_SYNTAX.match(text.replace(" ", "")) if isinstance(text, str) else None
    if not match:
        return None
    dims = tuple(re.findall(r"\[([A-Za-z0-9_]+)\]", match.group("dims")))
    return TypeRef(text, match.group("base") or "", match.group("target") or "", dims)


def _read_typed_list(entry, key, where, locate, problems, what):
    result = []
    rows = entry.get(key)
    if not isinstance(rows, list):
        problems.append(f"{where}: {what} needs {key} = [[\"name\", \"type\"], ...]")
        return result
    for row in rows:
        if (not isinstance(row, list) or len(row) not in (2, 3)
                or not all(isinstance(item, str) for item in row)):
            problems.append(f"{where}: {what}: each of {key} must be [\"name\", \"type\"] or "
                            f"[\"name\", \"type\", \"doc\"], got {row!r}")
            continue
        row_where = locate.word(row[0], where)
        if not IDENT.match(row[0]):
            problems.append(f"{row_where}: {what}: '{row[0]}' is not an identifier")
            continue
        parsed = parse_type(row[1])
        if parsed is None:
            problems.append(f"{row_where}: {what}: field '{row[0]}' has no valid type ('{row[1]}')")
            continue
        result.append(Field(row[0], parsed, row[2] if len(row) == 3 else "", row_where))
    return result


def _read_typedef(spec, kind, entry, where, locate, problems):
    parsed = parse_type(entry.get("type"))
    if parsed is None or parsed.dims or parsed.handle_of:
        problems.append(f"{where}: typedef {entry['name']} needs a scalar type (no array, no handle)")
        return
    _claim_name(spec, entry["name"], where, problems)
    spec.typedefs[entry["name"]] = Typedef(entry["name"], parsed, entry.get("xen", entry["name"]),
                                           _doc(entry, where, problems), where)


def _read_constants(spec, kind, entry, where, locate, problems):
    name = entry["group"]
    if any(g.name == name for g in spec.groups):
        problems.append(f"{where}: constant group '{name}' defined twice")
        return
    group = ConstantGroup(name, _doc(entry, where, problems), entry.get("cxx_enum", ""),
                          entry.get("enum_strip", ""), [], where)
    if kind == "subops":
        group.hypercall = entry.get("hypercall", "")
        if not group.hypercall:
            problems.append(f"{where}: [[subops]] {name} needs hypercall = \"name\"")
    values = entry.get("values")
    if not isinstance(values, list) or not values:
        problems.append(f"{where}: group '{name}' needs a non-empty values = [...] list")
        values = []
    for row in values:
        constant = _read_constant_row(spec, kind, group, row, where, locate, problems)
        if constant:
            group.constants.append(constant)
            spec.constants[constant.name] = constant
    spec.groups.append(group)


def _read_constant_row(spec, kind, group, row, where, locate, problems):
    if isinstance(row, dict):
        name, value, xen, extra = row.get("name"), row.get("value"), row.get("xen"), row.get("doc", "")
    elif isinstance(row, list) and len(row) in (2, 3):
        name, value, xen = row[0], row[1], None
        extra = row[2] if len(row) == 3 else ""
    else:
        problems.append(f"{where}: group '{group.name}': each value is [name, value] or "
                        f"[name, value, {'argument type' if kind == 'subops' else 'doc'}], got {row!r}")
        return None
    if not isinstance(name, str) or not IDENT.match(name):
        problems.append(f"{where}: group '{group.name}': unnamed value {row!r}")
        return None
    row_where = locate.word(name, where)
    if name.startswith("_"):
        problems.append(f"{row_where}: {name}: a leading underscore is reserved in C and C++; "
                        f"name it without one and give Xen's name as xen = \"{name}\"")
        return None
    if isinstance(value, str):
        if value not in spec.constants:
            problems.append(f"{row_where}: {name} = {value}: no earlier constant named '{value}'")
            return None
        value = spec.constants[value].value
    if not isinstance(value, int) or isinstance(value, bool):
        problems.append(f"{row_where}: {name}: value must be an integer, got {value!r}")
        return None
    if not isinstance(extra, str):
        problems.append(f"{row_where}: {name}: the third item must be a string")
        return None
    _claim_name(spec, name, row_where, problems)
    doc = extra
    if kind == "subops":
        group.arg_types[name] = extra
        doc = ""
    return Constant(name, value, name if xen is None else xen, doc, group.name, row_where)


def _read_aggregate(spec, kind, entry, where, locate, problems):
    name = entry["name"]
    fields = _read_typed_list(entry, "fields", where, locate, problems, f"{kind} {name}")
    seen = set()
    for item in fields:
        if item.name in seen:
            problems.append(f"{item.where}: {kind} {name}: field '{item.name}' appears twice")
        seen.add(item.name)
    if not fields and "fields" in entry:
        problems.append(f"{where}: {kind} {name} has no fields")
    _claim_name(spec, name, where, problems)
    spec.aggregates[name] = Aggregate(name, kind, entry.get("xen", f"{kind} {name}"),
                                      _doc(entry, where, problems), fields, where)


def _read_hypercall(spec, kind, entry, where, locate, problems):
    name = entry["name"]
    number = entry.get("number")
    if not isinstance(number, int) or not 0 <= number <= MAX_HYPERCALL_NUMBER:
        problems.append(f"{where}: hypercall {name}: number must be an integer 0..{MAX_HYPERCALL_NUMBER}")
        return
    args = _read_typed_list(entry, "args", where, locate, problems, f"hypercall {name}")
    if len(args) > MAX_HYPERCALL_ARGS:
        problems.append(f"{where}: hypercall {name}: {len(args)} arguments, at most {MAX_HYPERCALL_ARGS}")
    for other in spec.hypercalls:
        if other.number == number:
            problems.append(f"{where}: hypercall {name}: number {number} is already {other.name} ({other.where})")
        if other.name == name:
            problems.append(f"{where}: hypercall {name} defined twice (first at {other.where})")
    spec.hypercalls.append(Hypercall(name, number, args, entry.get("subops", ""),
                                     _doc(entry, where, problems), where))


def _claim_name(spec, name, where, problems):
    for table in (spec.typedefs, spec.aggregates, spec.constants):
        if name in table:
            problems.append(f"{where}: '{name}' is already defined at {table[name].where}")


def dimension(spec, text):
    return int(text) if text.isdigit() else spec.constants[text].value


def _check_type(spec, ref, where, what, problems):
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


def _lint(spec, problems):
    for typedef in spec.typedefs.values():
        _check_type(spec, typedef.type, typedef.where, f"typedef {typedef.name}", problems)
        if typedef.type.base in spec.aggregates:
            problems.append(f"{typedef.where}: typedef {typedef.name}: only integer types may be renamed")
    for aggregate in spec.aggregates.values():
        for item in aggregate.fields:
            _check_type(spec, item.type, item.where, f"{aggregate.name}.{item.name}", problems)
    groups = {g.name: g for g in spec.groups}
    calls = {h.name: h for h in spec.hypercalls}
    for call in spec.hypercalls:
        for arg in call.args:
            _check_type(spec, arg.type, arg.where, f"hypercall {call.name} argument {arg.name}", problems)
            if arg.type.dims:
                problems.append(f"{arg.where}: hypercall {call.name}: argument {arg.name} cannot be an array")
            elif arg.type.base in spec.aggregates:
                problems.append(f"{arg.where}: hypercall {call.name}: argument {arg.name} passes a "
                                f"structure by value; use handle<{arg.type.base}>")
        if call.subops and (call.subops not in groups or not groups[call.subops].hypercall):
            problems.append(f"{call.where}: hypercall {call.name}: no [[subops]] group '{call.subops}'")
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
            if arg and parse_type(arg) is None:
                problems.append(f"{constant.where}: sub-op {constant.name}: bad argument type '{arg}'")
            elif arg:
                _check_type(spec, parse_type(arg), constant.where, f"sub-op {constant.name}", problems)
    for group in spec.groups:
        if group.cxx_enum:
            for constant in group.constants:
                if not IDENT.match(enumerator(group, constant)):
                    problems.append(f"{constant.where}: {constant.name}: enumerator "
                                    f"'{enumerator(group, constant)}' is not an identifier")
    _lint_anonymous(spec, problems)


def enumerator(group, constant):
    name = constant.name
    if group.enum_strip and name.startswith(group.enum_strip):
        name = name[len(group.enum_strip):]
    return name.lower()


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


def _lay_out(spec, problems):
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
