import contextlib
import io
import re
import unittest
from pathlib import Path

import evaluate
from evaluate import Config, UsageError, parse_sections


class Arguments(unittest.TestCase):
    def test_sections(self):
        self.assertEqual(parse_sections([]), ["ondemand", "protection", "propagation", "density", "lean", "runtime",
                                              "compile"])
        self.assertEqual(parse_sections(["compile", "lean"]), ["compile", "lean"])
        self.assertEqual(parse_sections(["density", "ondemand"]), ["density", "ondemand"])
        self.assertIsNone(parse_sections(["density", "--help"]))
        self.assertIsNone(parse_sections(["-h"]))
        with self.assertRaisesRegex(UsageError, "unknown section `bogus`"):
            parse_sections(["bogus", "-h"])

    def test_usage_names_every_variable_the_program_reads(self):
        source = Path(evaluate.__file__).read_text(encoding="utf-8")
        read = set(re.findall(r'"((?:EVAL_|TERRAFORM)[A-Z_]*)"', source))
        self.assertGreaterEqual(len(read), 13)
        for name in read:
            self.assertIn(name, evaluate.__doc__)
        self.assertIn("Usage: scripts/evaluate.sh [ondemand|protection|propagation|density|lean|runtime|compile]...\n"
                      "       (default: all)", evaluate.__doc__)
        for section in evaluate.MEASURES:
            self.assertIn(f"\n  {section} ", evaluate.__doc__)


class Environment(unittest.TestCase):
    def test_defaults(self):
        c = Config.from_env({}, Path("/r"), cores=2)
        self.assertEqual((c.runs, c.ns, c.prop_runs, c.pool_size, c.density_n), (5, [1, 5, 10], 1, 2, 3))
        self.assertEqual((c.requests, c.concurrency, c.load_runs, c.poll_interval), (2000, 4, 3, "0.1"))
        self.assertEqual(c.ondemand_modes, ["none", "image", "paused", "snapshot"])
        self.assertEqual(c.prop_modes, ["inplace", "replace", "pool", "staged"])
        self.assertEqual(c.out, Path("/r/docs/guides/benchmarks.md"))
        self.assertEqual(c.terraform, Path("/r/.venv/bin/terraform"))
        self.assertEqual((c.lean_boots, c.lean_instances), (5, [1, 5, 20]))
        self.assertEqual((c.guest_seconds, c.guest_rounds, c.guest_connections), ("3", 2, 8))
        self.assertEqual((c.runtime_seconds, c.runtime_rounds, c.runtime_connections), ("3", 2, 32))
        self.assertEqual(c.compile_seconds, "5")

    def test_bench_settings(self):
        c = Config.from_env({"EVAL_LEAN_BOOTS": "2", "EVAL_LEAN_INSTANCES": "1 5", "EVAL_RUNTIME_SECONDS": "0.5",
                             "EVAL_RUNTIME_ROUNDS": "1", "EVAL_RUNTIME_CONNECTIONS": "8", "EVAL_COMPILE_SECONDS": " 2 ",
                             "EVAL_GUEST_SECONDS": "1.5", "EVAL_GUEST_ROUNDS": "3", "EVAL_GUEST_CONNECTIONS": "4"},
                            Path("/r"))
        self.assertEqual((c.lean_boots, c.lean_instances), (2, [1, 5]))
        self.assertEqual((c.guest_seconds, c.guest_rounds, c.guest_connections), ("1.5", 3, 4))
        self.assertEqual((c.runtime_seconds, c.runtime_rounds, c.runtime_connections), ("0.5", 1, 8))
        self.assertEqual(c.compile_seconds, "2")

    def test_overrides(self):
        c = Config.from_env({"EVAL_RUNS": "1", "EVAL_N": " 2  3 ", "EVAL_PROP_MODES": "staged", "EVAL_OUT": "/tmp/b.md",
                             "EVAL_POLL_INTERVAL": "0.25", "TERRAFORM": "/usr/bin/terraform", "EVAL_ONDEMAND_MODES": ""},
                            Path("/r"))
        self.assertEqual((c.runs, c.ns, c.prop_modes, c.poll_interval), (1, [2, 3], ["staged"], "0.25"))
        self.assertEqual(c.ondemand_modes, ["none", "image", "paused", "snapshot"])  # empty: the default, as ${VAR:-...}
        self.assertEqual((c.out, c.terraform), (Path("/tmp/b.md"), Path("/usr/bin/terraform")))

    def test_bad_values_are_refused(self):
        for env in ({"EVAL_RUNS": "five"}, {"EVAL_RUNS": "0"}, {"EVAL_N": "1 x"}, {"EVAL_N": "0"},
                    {"EVAL_POLL_INTERVAL": "fast"}, {"EVAL_PROP_MODES": "inplace pools"},
                    {"EVAL_ONDEMAND_MODES": "cold"}, {"EVAL_LEAN_BOOTS": "0"}, {"EVAL_LEAN_INSTANCES": "1,5"},
                    {"EVAL_LEAN_INSTANCES": "0 5"}, {"EVAL_RUNTIME_SECONDS": "0"}, {"EVAL_RUNTIME_SECONDS": "3s"},
                    {"EVAL_RUNTIME_ROUNDS": "0"}, {"EVAL_GUEST_SECONDS": "0"}, {"EVAL_GUEST_CONNECTIONS": "0"},
                    {"EVAL_COMPILE_SECONDS": "-1"}):
            with self.subTest(env=env), self.assertRaises(UsageError):
                Config.from_env(env, Path("/r"))


class Main(unittest.TestCase):
    def test_help_and_unknown_section(self):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            self.assertEqual(evaluate.main(["--help"]), 0)
            self.assertEqual(evaluate.main(["bogus"]), 2)
        self.assertTrue(out.getvalue().startswith("The evaluation of issues 6 and 14"))
        self.assertTrue(err.getvalue().startswith("evaluate.sh: unknown section `bogus`\nThe evaluation of issues 6 and 14"))


if __name__ == "__main__":
    unittest.main()
