"""Reading spec/*.toml into the model, with every problem reported as `file:line: message`."""

import re
import tomllib
from pathlib import Path

from .layout import lay_out_all
from .lint import lint
from .model import (IDENT, MAX_HYPERCALL_ARGS, MAX_HYPERCALL_NUMBER, Aggregate, Constant, ConstantGroup, Field,
                    Hypercall, Spec, SpecError, Typedef, Where, parse_type)

# The keys each kind of entry takes: key -> (expected Python type, required).
SCHEMA = {
    "typedef": {"name": (str, True), "type": (str, True), "xen": (str, False), "doc": (str, False)},
    "constants": {"group": (str, True), "doc": (str, False), "cxx_enum": (str, False), "enum_strip": (str, False),
                  "values": (list, True)},
    "subops": {"group": (str, True), "hypercall": (str, True), "doc": (str, False), "values": (list, True)},
    "struct": {"name": (str, True), "xen": (str, False), "doc": (str, False), "fields": (list, True)},
    "union": {"name": (str, True), "xen": (str, False), "doc": (str, False), "fields": (list, True)},
    "hypercall": {"name": (str, True), "number": (int, True), "args": (list, True), "subops": (str, False),
                  "stub": (bool, False), "doc": (str, False)},
}
TOP_LEVEL_KEYS = set(SCHEMA) | {"xen_headers"}
INT64_MIN, UINT64_MAX = -(1 << 63), (1 << 64) - 1
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


class _Locator:
    """Finds the line of an entry or of a quoted name inside it, for error messages."""

    def __init__(self, path, text):
        self.path = path
        self.lines = text.splitlines()

    def entry(self, header, key, name):
        inside = False
        for number, line in enumerate(self.lines, 1):
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


def _is(value, expected):
    return isinstance(value, expected) and not (expected is int and isinstance(value, bool))


def load(spec_dir):
    spec_dir = Path(spec_dir)
    problems = []
    spec = Spec([], [], {}, [], {}, {}, [])
    paths = sorted(spec_dir.glob("*.toml"))
    if not paths:
        raise SpecError([f"{spec_dir}: no *.toml files"])
    for path in paths:
        text = path.read_text(encoding="utf-8")
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            match = re.search(r"\(at line (\d+), column \d+\)", str(error))
            message = re.sub(r"\s*\(at line.*\)", "", str(error))
            problems.append(f"{path}:{match.group(1) if match else 1}: TOML syntax: {message}")
            continue
        spec.files.append(str(path))
        _read_document(spec, document, _Locator(str(path), text), problems)
    if not problems:
        lint(spec, problems)
    if not spec.hypercalls:
        problems.append(f"{spec_dir}: the spec defines no hypercall")
    if not problems:
        lay_out_all(spec, problems)
    if problems:
        raise SpecError(problems)
    return spec


def _read_document(spec, document, locate, problems):
    for key, value in document.items():
        if key not in TOP_LEVEL_KEYS:
            problems.append(f"{locate.path}:1: unknown top-level key '{key}' "
                            f"(expected one of {', '.join(sorted(TOP_LEVEL_KEYS))})")
        elif key == "xen_headers":
            if not _is(value, list) or not all(_is(header, str) for header in value):
                problems.append(f"{locate.word('xen_headers', Where(locate.path, 1))}: xen_headers must be a list "
                                f"of strings")
            else:
                spec.xen_headers += value
        elif not _is(value, list) or not all(_is(entry, dict) for entry in value):
            problems.append(f"{locate.path}:1: '{key}' must be written as [[{key}]] tables")
        else:
            for entry in value:
                _read_entry(spec, key, entry, locate, problems)


def _read_entry(spec, kind, entry, locate, problems):
    key = "group" if kind in ("constants", "subops") else "name"
    name = entry.get(key)
    if not _is(name, str) or not IDENT.match(name):
        problems.append(f"{locate.path}:1: a [[{kind}]] entry needs {key} = \"identifier\", got {name!r}")
        return
    where = locate.entry(kind, key, name)
    schema = SCHEMA[kind]
    bad = False
    for item, value in entry.items():
        if item not in schema:
            problems.append(f"{where}: [[{kind}]] {name}: unknown key '{item}'")
            bad = True
        elif not _is(value, schema[item][0]):
            problems.append(f"{where}: [[{kind}]] {name}: {item} must be a {schema[item][0].__name__}, "
                            f"got {value!r}")
            bad = True
    for item, (_, required) in schema.items():
        if required and item not in entry:
            problems.append(f"{where}: [[{kind}]] {name}: {item} is missing")
            bad = True
    if bad:
        return
    if "cxx_enum" in entry and not IDENT.match(entry["cxx_enum"]):
        problems.append(f"{where}: [[{kind}]] {name}: cxx_enum '{entry['cxx_enum']}' is not an identifier")
        return
    reader = {"typedef": _read_typedef, "constants": _read_constants, "subops": _read_constants,
              "struct": _read_aggregate, "union": _read_aggregate, "hypercall": _read_hypercall}
    reader[kind](spec, kind, entry, where, locate, problems)


def _read_typed_list(entry, key, where, locate, problems, what):
    result = []
    for row in entry[key]:
        if (not _is(row, list) or len(row) not in (2, 3) or not all(_is(item, str) for item in row)):
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
    parsed = parse_type(entry["type"])
    if parsed is None or parsed.dims or parsed.handle_of:
        problems.append(f"{where}: typedef {entry['name']} needs a scalar type (no array, no handle)")
        return
    _claim_name(spec, entry["name"], where, problems)
    spec.typedefs[entry["name"]] = Typedef(entry["name"], parsed, entry.get("xen", entry["name"]),
                                           entry.get("doc", ""), where)


def _read_constants(spec, kind, entry, where, locate, problems):
    name = entry["group"]
    if any(g.name == name for g in spec.groups):
        problems.append(f"{where}: constant group '{name}' defined twice")
        return
    group = ConstantGroup(name, entry.get("doc", ""), entry.get("cxx_enum", ""), entry.get("enum_strip", ""), [],
                          where, entry.get("hypercall", ""))
    if not entry["values"]:
        problems.append(f"{where}: group '{name}' has no values")
    for row in entry["values"]:
        constant = _read_constant_row(spec, kind, group, row, where, locate, problems)
        if constant:
            group.constants.append(constant)
            spec.constants[constant.name] = constant
    spec.groups.append(group)


def _read_constant_row(spec, kind, group, row, where, locate, problems):
    if _is(row, dict):
        name, value, xen, extra = row.get("name"), row.get("value"), row.get("xen"), row.get("doc", "")
        unknown = set(row) - {"name", "value", "xen", "doc"}
        if unknown:
            problems.append(f"{where}: group '{group.name}': unknown key(s) {', '.join(sorted(unknown))}")
            return None
    elif _is(row, list) and len(row) in (2, 3):
        name, value, xen = row[0], row[1], None
        extra = row[2] if len(row) == 3 else ""
    else:
        problems.append(f"{where}: group '{group.name}': each value is [name, value] or "
                        f"[name, value, {'argument type' if kind == 'subops' else 'doc'}], got {row!r}")
        return None
    if not _is(name, str) or not IDENT.match(name):
        problems.append(f"{where}: group '{group.name}': unnamed value {row!r}")
        return None
    row_where = locate.word(name, where)
    if name.startswith("_"):
        problems.append(f"{row_where}: {name}: a leading underscore is reserved in C and C++; "
                        f"name it without one and give Xen's name as xen = \"{name}\"")
        return None
    if _is(value, str):
        if value not in spec.constants:
            problems.append(f"{row_where}: {name} = {value}: no earlier constant named '{value}'")
            return None
        value = spec.constants[value].value
    if not _is(value, int) or not INT64_MIN <= value <= UINT64_MAX:
        problems.append(f"{row_where}: {name}: value must be an integer that fits 64 bits, got {value!r}")
        return None
    if group.cxx_enum and not INT32_MIN <= value <= INT32_MAX:
        problems.append(f"{row_where}: {name}: {value} does not fit the int of enum {group.cxx_enum}")
        return None
    if not _is(extra, str) or (xen is not None and not _is(xen, str)):
        problems.append(f"{row_where}: {name}: the doc, argument type and xen name must be strings")
        return None
    _claim_name(spec, name, row_where, problems)
    if kind == "subops":
        group.arg_types[name] = extra
        extra = ""
    return Constant(name, value, name if xen is None else xen, extra, group.name, row_where)


def _read_aggregate(spec, kind, entry, where, locate, problems):
    name = entry["name"]
    fields = _read_typed_list(entry, "fields", where, locate, problems, f"{kind} {name}")
    seen = set()
    for item in fields:
        if item.name in seen:
            problems.append(f"{item.where}: {kind} {name}: field '{item.name}' appears twice")
        seen.add(item.name)
    if not entry["fields"]:
        problems.append(f"{where}: {kind} {name} has no fields")
    _claim_name(spec, name, where, problems)
    spec.aggregates[name] = Aggregate(name, kind, entry.get("xen", f"{kind} {name}"), entry.get("doc", ""),
                                      fields, where)


def _read_hypercall(spec, kind, entry, where, locate, problems):
    name, number = entry["name"], entry["number"]
    if not 0 <= number <= MAX_HYPERCALL_NUMBER:
        problems.append(f"{where}: hypercall {name}: number must be 0..{MAX_HYPERCALL_NUMBER}")
        return
    args = _read_typed_list(entry, "args", where, locate, problems, f"hypercall {name}")
    if len(args) > MAX_HYPERCALL_ARGS:
        problems.append(f"{where}: hypercall {name}: {len(args)} arguments, at most {MAX_HYPERCALL_ARGS}")
    for other in spec.hypercalls:
        if other.number == number:
            problems.append(f"{where}: hypercall {name}: number {number} is already {other.name} ({other.where})")
        if other.name == name:
            problems.append(f"{where}: hypercall {name} defined twice (first at {other.where})")
    spec.hypercalls.append(Hypercall(name, number, args, entry.get("subops", ""), entry.get("doc", ""), where,
                                     entry.get("stub", True)))


def _claim_name(spec, name, where, problems):
    for table in (spec.typedefs, spec.aggregates, spec.constants):
        if name in table:
            problems.append(f"{where}: '{name}' is already defined at {table[name].where}")
