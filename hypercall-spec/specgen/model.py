"""The hypercall spec's data model.

The spec is every spec/*.toml file, read in name order as one document (loader.py), checked
(lint.py) and laid out (layout.py). Every problem becomes a SpecError carrying
`file:line: message`, never a Python traceback.
"""

import re
from dataclasses import dataclass, field

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
    stub: bool = True  # false for iret, which the guest jumps to with its frame on the stack

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


def parse_type(text):
    match = TYPE_SYNTAX.match(text.replace(" ", "")) if isinstance(text, str) else None
    if not match:
        return None
    dims = tuple(re.findall(r"\[([A-Za-z0-9_]+)\]", match.group("dims")))
    return TypeRef(text, match.group("base") or "", match.group("target") or "", dims)


def enumerator(group, constant):
    name = constant.name
    if group.enum_strip and name.startswith(group.enum_strip):
        name = name[len(group.enum_strip):]
    return name.lower()


def dimension(spec, text):
    return int(text) if text.isdigit() else spec.constants[text].value
