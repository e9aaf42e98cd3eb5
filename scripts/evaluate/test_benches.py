"""The sections run by cargo benchmarks: their command lines and environments, what a failure
says, and, with a stand-in for cargo, the whole run: figures read, failures reported, nothing
left running."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from pathlib import Path

import benches
import harness
import outputs
from evaluate import Config

CFG = Config.from_env({"EVAL_LEAN_BOOTS": "2", "EVAL_LEAN_INSTANCES": "1 5", "EVAL_RUNTIME_SECONDS": "0.5"}, Path("/r"))


class Commands(unittest.TestCase):
    def test_command_lines(self):
        self.assertEqual(benches.command(CFG, "lean"),
                         ["cargo", "bench", "--locked", "-p", "sdsec-engine", "--bench", "boot"])
        self.assertEqual(benches.command(CFG, "runtime", "/c/cargo"),
                         ["/c/cargo", "bench", "--locked", "-p", "sdsec-guest", "--bench", "overhead"])
        self.assertEqual(benches.command(CFG, "compile")[-4:], ["compile", "--", "--measurement-time", "5"])

    def test_environments(self):
        base = {"PATH": "/bin", "CARGO_TARGET_DIR": "/t", "SDSEC_BENCH_KERNELS": "sdsec", "SDSEC_BENCH_BOOTS": "9"}
        env = benches.environment(CFG, "lean", base, Path("/w/lean/figures.json"), Path("/w/lean/tmp"))
        self.assertEqual({k: env[k] for k in ("SDSEC_BENCH_JSON", "TMPDIR", "SDSEC_BENCH_BOOTS", "SDSEC_BENCH_INSTANCES")},
                         {"SDSEC_BENCH_JSON": "/w/lean/figures.json", "TMPDIR": "/w/lean/tmp", "SDSEC_BENCH_BOOTS": "2",
                          "SDSEC_BENCH_INSTANCES": "1,5"})
        self.assertEqual((env["SDSEC_BENCH_GUEST_SECONDS"], env["SDSEC_BENCH_GUEST_ROUNDS"],
                          env["SDSEC_BENCH_GUEST_CONNECTIONS"]), ("3", "2", "8"))
        self.assertEqual((env["CARGO_TARGET_DIR"], env["SDSEC_BENCH_KERNELS"]), ("/t", "sdsec"))  # passed through
        self.assertEqual(base["SDSEC_BENCH_BOOTS"], "9")  # the evaluation's own stays as it was
        env = benches.environment(CFG, "runtime", base, Path("/j"), Path("/tmp/x"))
        self.assertEqual((env["SECONDS"], env["ROUNDS"], env["CONNECTIONS"]), ("0.5", "2", "32"))
        env = benches.environment(CFG, "compile", base, Path("/j"), Path("/tmp/x"))
        self.assertNotIn("SECONDS", env)

    def test_printed(self):
        log = "   Compiling x\n    Finished `bench` profile\n     Running benches/boot/main.rs (t/boot-1)\nTABLE\nrow\n"
        self.assertEqual(benches.printed(log), "TABLE\nrow")
        self.assertEqual(benches.printed("no cargo lines\n"), "no cargo lines\n")


class Failures(unittest.TestCase):
    def test_panic(self):
        log = ("TABLE\nthread 'main' panicked at provider/engine/benches/boot/main.rs:121:61:\n"
               "boot of bench-snapshot failed: the guest did not become ready within 120 s\n"
               "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"
               "error: bench failed, to rerun pass `-p sdsec-engine --bench boot`\n")
        self.assertEqual(outputs.bench_failure(log, 101),
                         "boot of bench-snapshot failed: the guest did not become ready within 120 s")

    def test_old_panic_format_and_the_last_panic(self):
        log = "thread 'a' panicked at 'first', src/x.rs:1:1\nthread 'main' panicked at 'boom', benches/c.rs:2:3\n"
        self.assertEqual(outputs.bench_failure(log, 101), "boom")

    def test_cargo_error_or_status(self):
        log = "   Compiling sdsec-engine\nerror[E0425]: cannot find value `x` in this scope\nerror: could not compile\n"
        self.assertEqual(outputs.bench_failure(log, 101), "error[E0425]: cannot find value `x` in this scope")
        self.assertEqual(outputs.bench_failure("killed\n", -9), "exit status -9")


# A stand-in for cargo: what it does is FAKE_CARGO's value.
FAKE_CARGO = textwrap.dedent("""\
    import json, os, subprocess, sys
    mode, out = os.environ["FAKE_CARGO"], os.environ["SDSEC_BENCH_JSON"]
    print("   Compiling sdsec-sectosca\\n     Running benches/compile.rs (target/release/deps/compile-1)")
    print("ARGS " + " ".join(sys.argv[1:]))
    figures = {"bench": "compile", "parse": {"wall_ms": [5.0], "cpu_ms": [5.0]}}
    if mode in ("ok", "panic", "leave"):
        json.dump(figures, open(out, "w"))
    if mode == "leave":  # a detached child naming TMPDIR, as a QEMU the benchmark could not stop
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", os.environ["TMPDIR"]],
                         start_new_session=True)
    if mode == "panic":
        print("thread 'main' panicked at benches/compile.rs:1:1:\\nthe compile failed", file=sys.stderr)
        sys.exit(101)
    """)


class WholeRun(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="test-benches."))
        (self.dir / "bin").mkdir()
        cargo = self.dir / "bin" / "cargo"
        cargo.write_text(f"#!{sys.executable}\n" + FAKE_CARGO)
        cargo.chmod(0o755)
        (self.dir / "work").mkdir()
        self.run_ = harness.Run(self.dir, "/x/terraform", "/x/sdsec", "/x/app", self.dir / "work")
        self.quiet = open(os.devnull, "w")
        self.stderr, sys.stderr = sys.stderr, self.quiet

    def tearDown(self):
        for d in self.run_.swept:  # what Run.cleanup does for them, without its signal handling
            self.run_.sweep(d)
        sys.stderr = self.stderr
        self.quiet.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def attempt(self, mode):
        env = {"PATH": str(self.dir / "bin"), "FAKE_CARGO": mode}
        return benches.attempt(self.run_, CFG, "compile", env)

    def test_figures(self):
        figures, error = self.attempt("ok")
        self.assertEqual((figures["parse"]["wall_ms"], error), ([5.0], ""))
        log = (self.dir / "work" / "compile" / "bench.log").read_text()
        self.assertIn("ARGS bench --locked -p sdsec-sectosca --bench compile -- --measurement-time 5", log)

    def test_a_panic_keeps_the_figures_before_it(self):
        figures, error = self.attempt("panic")
        self.assertEqual((figures["bench"], error), ("compile", "the compile failed"))

    def test_no_figures(self):
        figures, error = self.attempt("none")
        self.assertIsNone(figures)
        self.assertRegex(error, r"^no figures in figures.json \(.*\): does the benchmark write SDSEC_BENCH_JSON\?$")

    def test_nothing_is_left_running(self):
        figures, error = self.attempt("leave")
        self.assertEqual(error, "")
        tmp = str(self.dir / "work" / "compile" / "tmp")
        time.sleep(0.2)
        left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and not harness._zombie(int(p.name))
                and _cmdline(p).find(tmp) >= 0]
        self.assertEqual(left, [])

    def test_no_cargo(self):
        env = {"PATH": str(self.dir / "nowhere")}
        self.assertEqual(benches.attempt(self.run_, CFG, "lean", env),
                         (None, "cargo is not on PATH (rustup puts it in ~/.cargo/bin)"))


def _cmdline(proc_dir):
    try:
        return (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Sweep(unittest.TestCase):
    def test_ends_what_names_the_directory_only(self):
        with tempfile.TemporaryDirectory() as d:
            run = harness.Run(d, "/x/t", "/x/s", "/x/a", d)
            ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"{d}/tmp"],
                                    start_new_session=True)
            other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "/elsewhere"])
            try:
                self.assertEqual(run.sweep(Path(d) / "tmp"), 1)
                self.assertIsNotNone(ours.wait(timeout=5))
                self.assertIsNone(other.poll())
            finally:
                for p in (ours, other):
                    p.kill()
                    p.wait()

    def test_end_group(self):
        proc = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"], start_new_session=True)
        harness.end_group(proc, grace=5)
        self.assertIsNotNone(proc.returncode)


if __name__ == "__main__":
    unittest.main()
