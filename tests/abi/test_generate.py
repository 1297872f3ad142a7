"""The generator's own tests: malformed specs are refused with file:line, layouts are computed right."""

import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

GENERATOR = Path(__file__).resolve().parents[2] / "hypercall-spec" / "generate.py"

VALID = """
[[typedef]]
name = "domid_t"
type = "u16"

[[constants]]
group = "limits"
values = [["MAX_THINGS", 4]]

[[struct]]
name = "pair"
fields = [["small", "u8"], ["big", "u32"], ["id", "domid_t"], ["many", "u16[MAX_THINGS]"]]

[[hypercall]]
name = "first"
number = 1
args = [["cmd", "i32"], ["arg", "handle<void>"]]
subops = "firstop"

[[subops]]
group = "firstop"
hypercall = "first"
values = [["FIRSTOP_pair", 0, "pair"], ["FIRSTOP_none", 1, ""]]
"""


def run_generator(files, *options):
    with tempfile.TemporaryDirectory() as directory:
        for name, text in files.items():
            Path(directory, name).write_text(textwrap.dedent(text))
        out = Path(directory, "out")
        result = subprocess.run([sys.executable, str(GENERATOR), "--spec-dir", directory, *options,
                                 *(["--out", str(out)] if not options else [])],
                                capture_output=True, text=True)
        outputs = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()} \
            if out.exists() else {}
        return result, outputs


class RefusesMalformedSpecs(unittest.TestCase):
    def assert_refused(self, files, expected):
        result, outputs = run_generator(files)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn(expected, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(outputs, {}, "nothing may be written from a spec with problems")

    def test_duplicate_hypercall_number_names_both_places(self):
        self.assert_refused({"a.toml": VALID + '\n[[hypercall]]\nname = "second"\nnumber = 1\nargs = []\n'},
                            "a.toml:26: hypercall second: number 1 is already first (")

    def test_untyped_field(self):
        self.assert_refused({"a.toml": '[[struct]]\nname = "s"\nfields = [\n  ["x", "u8"],\n  ["y", ""],\n]\n'},
                            "a.toml:5: struct s: field 'y' has no valid type")

    def test_unknown_type(self):
        self.assert_refused({"a.toml": '[[struct]]\nname = "s"\nfields = [["x", "u128"]]\n'},
                            "a.toml:3: s.x: no type named 'u128'")

    def test_toml_syntax_error(self):
        self.assert_refused({"a.toml": VALID, "b.toml": '[[struct]]\nname = "s"\nfields = [["x" "u8"]]\n'},
                            "b.toml:3: TOML syntax")

    def test_unnamed_subop(self):
        self.assert_refused({"a.toml": VALID.replace('["FIRSTOP_none", 1, ""]', '[1, ""]')},
                            "a.toml:21: group 'firstop': unnamed value")

    def test_subop_values_unique(self):
        self.assert_refused({"a.toml": VALID.replace('["FIRSTOP_none", 1, ""]', '["FIRSTOP_none", 0, ""]')},
                            "sub-op FIRSTOP_none has the value 0 of FIRSTOP_pair")

    def test_anonymous_struct_must_be_checked_through_a_container(self):
        self.assert_refused({"a.toml": '[[struct]]\nname = "loose"\nxen = ""\nfields = [["x", "u8"]]\n'},
                            "a.toml:2: struct loose has no Xen name and no Xen-named structure contains it")

    def test_too_many_arguments(self):
        args = ", ".join(f'["a{i}", "u64"]' for i in range(6))
        self.assert_refused({"a.toml": f'[[hypercall]]\nname = "h"\nnumber = 0\nargs = [{args}]\n'},
                            "a.toml:2: hypercall h: 6 arguments, at most 5")

    def test_unknown_key_is_a_typo(self):
        self.assert_refused({"a.toml": '[[struct]]\nname = "s"\nfeilds = [["x", "u8"]]\n'},
                            "a.toml:2: [[struct]] s: unknown key 'feilds'")

    def test_entries_of_the_wrong_shape(self):
        cases = [
            ('typedef = [1, 2]\n', "a.toml:1: 'typedef' must be written as [[typedef]] tables"),
            ('[[constants]]\ngroup = "g"\nenum_strip = 5\nvalues = [["A", 1]]\n', "enum_strip must be a str"),
            ('[[hypercall]]\nname = "h"\nnumber = 0\nargs = []\nsubops = ["x"]\n', "subops must be a str"),
            ('[[hypercall]]\nname = "h"\nnumber = true\nargs = []\n', "number must be a int"),
            ('xen_headers = "xen/xen.h"\n', "xen_headers must be a list of strings"),
            ('[[constants]]\ngroup = "g"\ncxx_enum = "a b"\nvalues = [["A", 1]]\n', "is not an identifier"),
            ('[[struct]]\nname = "s"\nxen = 5\nfields = [["x", "u8"]]\n', "xen must be a str"),
            ('[[constants]]\ngroup = "g"\nvalues = [["A", 0x1_0000_0000_0000_0000]]\n', "fits 64 bits"),
            ('[[constants]]\ngroup = "g"\ncxx_enum = "E"\nvalues = [["A", 0x8000_0000]]\n', "does not fit the int"),
        ]
        for text, expected in cases:
            with self.subTest(text=text):
                self.assert_refused({"a.toml": VALID, "b.toml": text} if "a.toml:1" not in expected
                                    else {"a.toml": text, "b.toml": VALID}, expected)

    def test_typedef_cycle(self):
        self.assert_refused({"a.toml": VALID + '[[typedef]]\nname = "a"\ntype = "b"\n[[typedef]]\nname = "b"\n'
                                                'type = "a"\n'}, "typedef a: must name an integer type")

    def test_subop_argument_must_be_a_type_name(self):
        self.assert_refused({"a.toml": VALID.replace('["FIRSTOP_none", 1, ""]', '["FIRSTOP_none", 1, "u8[4]"]')},
                            "sub-op FIRSTOP_none: the argument type 'u8[4]' must be a type name")

    def test_multiplexed_hypercall_takes_its_command_first(self):
        self.assert_refused({"a.toml": VALID.replace('args = [["cmd", "i32"], ["arg", "handle<void>"]]',
                                                     'args = [["arg", "handle<void>"], ["cmd", "i32"]]')},
                            "hypercall first: with sub-ops, its first argument must be the integer command")

    def test_a_spec_needs_hypercalls(self):
        self.assert_refused({"a.toml": '[[typedef]]\nname = "t"\ntype = "u8"\n'}, "the spec defines no hypercall")

    def test_reserved_constant_name(self):
        self.assert_refused({"a.toml": '[[constants]]\ngroup = "g"\nvalues = [["_HIDDEN", 1]]\n'},
                            "a.toml:3: _HIDDEN: a leading underscore is reserved")


class GeneratesFromAValidSpec(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.result, cls.outputs = run_generator({"a.toml": VALID})

    def test_succeeds(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)

    def test_layout_is_natural_alignment(self):
        header = self.outputs["include/pvkit/xen-abi.h"]
        self.assertIn('sizeof(struct pvk_pair) == 20', header)
        for field, offset in (("small", 0), ("big", 4), ("id", 8), ("many", 10)):
            self.assertIn(f"offsetof(struct pvk_pair, {field}) == {offset}", header)

    def test_subop_wrappers_replace_the_untyped_handle(self):
        header = self.outputs["include/pvkit/xen-abi.h"]
        self.assertIn("static inline long pvk_firstop_pair(struct pvk_pair *arg)", header)
        self.assertIn("static inline long pvk_firstop_none(void)", header)
        self.assertIn("call pvk_hypercall_page + 32", header)

    def test_dispatcher_truncates_narrow_arguments(self):
        dispatch = self.outputs["include/hv/hypercall_dispatch.hpp"]
        self.assertIn("hypercall_args::first{static_cast<std::int32_t>(regs.args[0]), {regs.args[1]}}", dispatch)

    def test_abi_check_covers_every_member(self):
        check = self.outputs["abi_check.c"]
        for field in ("small", "big", "id", "many"):
            self.assertIn(f"offsetof(struct pvk_pair, {field}), offsetof(struct pair, {field})", check)
        self.assertRegex(check, r'SAME\("[^"]*a\.toml:23", PVK_FIRSTOP_none, FIRSTOP_none\);')


class DocsCheck(unittest.TestCase):
    def test_stale_docs_are_reported(self):
        with tempfile.TemporaryDirectory() as directory:
            stale = Path(directory, "hypercalls.md")
            stale.write_text("# old\n")
            result = subprocess.run([sys.executable, str(GENERATOR), "--check-docs", str(stale)],
                                    capture_output=True, text=True)
        self.assertEqual(result.returncode, 1)
        self.assertIn("is stale; refresh it with", result.stderr)


if __name__ == "__main__":
    unittest.main()
