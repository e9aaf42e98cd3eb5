"""The clean-up guarantee and the Terraform plumbing, with a stand-in for terraform and sdsec."""

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import harness
from harness import Failure, Interrupted, Run

FAKE_TERRAFORM = """#!/bin/sh
echo "$*" >>"$FAKE_CALLS"
case "$*" in
  *" apply "*) if [ -n "$FAKE_FAIL" ]; then printf 'Error: Pool not known\\n\\n  with sdsec_pool.api\\n'; exit 1; fi
               echo "Apply complete!" ;;
  *" output -json"*) echo '{"ids": {"value": ["a", "b"]}, "pool_ready": {"value": 2}}' ;;
  *" destroy "*) exit "${FAKE_DESTROY_RC:-0}" ;;
esac
"""


class Plumbing(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="evaluate-test."))
        terraform = self.tmp / "terraform"
        terraform.write_text(FAKE_TERRAFORM)
        terraform.chmod(0o755)
        self.calls = self.tmp / "calls"
        self.env = dict(os.environ)
        os.environ.update(FAKE_CALLS=str(self.calls), FAKE_FAIL="", FAKE_DESTROY_RC="0")
        (self.tmp / "work").mkdir()
        self.run_ = Run(self.tmp, terraform, "/bin/true", "/x/app", self.tmp / "work")
        self.stderr = contextlib.redirect_stderr(io.StringIO())
        self.stderr.__enter__()
        self.processes = []

    def tearDown(self):
        self.stderr.__exit__(None, None, None)
        for p in self.processes:
            if p.poll() is None:
                p.kill()
                p.wait()
        os.environ.clear()
        os.environ.update(self.env)
        for sig in harness.SIGNAL_CODES:
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        harness._quiet = False
        subprocess.run(["rm", "-rf", str(self.tmp)], check=True)

    def calls_made(self):
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def applied_dir(self, name):
        d = self.run_.newdir(name)
        self.run_.write_config(d, 1)
        (d / "terraform.tfstate").write_text("{}")
        return d

    def sleeper(self, *argv):
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])
        self.processes.append(p)
        return p

    def test_apply_and_outputs(self):
        d = self.run_.newdir("ondemand-none")
        self.run_.apply(d)
        self.assertEqual(self.run_.out(d, "ids"), ["a", "b"])
        self.assertEqual(self.run_.out(d, "pool_ready"), [2])
        self.assertEqual(self.calls_made(), [f"-chdir={d} apply -auto-approve -no-color -input=false",
                                             f"-chdir={d} output -json"])

    def test_a_failed_command_reports_its_own_error(self):
        d = self.run_.newdir("prop-pool")
        (d / "tf.log").write_text("Error: an earlier one, from a command that was retried\n")
        os.environ["FAKE_FAIL"] = "1"
        with self.assertRaisesRegex(Failure, r"^terraform apply failed: Pool not known$"):
            self.run_.tf(d, "apply", "-auto-approve", "-target=sdsec_pool.api")

    def test_teardown_destroys_once(self):
        d = self.applied_dir("density")
        self.run_.teardown(d)
        self.run_.teardown(d)
        self.assertEqual(self.calls_made(), [f"-chdir={d} destroy -auto-approve -no-color -input=false -lock=false"])
        self.assertTrue((d / ".down").exists())

    def test_teardown_stops_the_qemu_of_its_state_dir_only(self):
        d = self.applied_dir("prop-replace")
        os.environ["FAKE_DESTROY_RC"] = "1"  # the destroy fails: the processes are stopped directly
        ours = self.sleeper(f"{d}/state/instances/a/qemu.pid")
        other = self.sleeper("/elsewhere/state")
        for iid, p in (("a", ours), ("b", other)):
            (d / "state" / "instances" / iid).mkdir(parents=True)
            (d / "state" / "instances" / iid / "qemu.pid").write_text(f"{p.pid}\n")
        self.run_.teardown(d)
        self.assertEqual(ours.wait(timeout=10), -signal.SIGTERM)
        self.assertIsNone(other.poll())

    def test_an_attempt_reports_tears_down_and_stops_background(self):
        mine, theirs = self.applied_dir("prop-pool"), self.applied_dir("protection-vm")
        poller = self.run_.start_background([sys.executable, "-c", "import time; time.sleep(60)"])
        self.processes.append(poller)

        def measurement():
            harness.die("not every instance enforced | the change\nsee prop.json")

        error = self.run_.attempt("prop-pool", measurement)
        self.assertEqual(error, "not every instance enforced   the change see prop.json")
        self.assertTrue((mine / ".down").exists())
        self.assertFalse((theirs / ".down").exists())
        self.assertIsNotNone(poller.poll())
        self.assertEqual(self.run_.attempt("prop-pool", lambda: None), "")

    def test_an_unexpected_error_is_a_failure_too(self):
        self.assertEqual(self.run_.attempt("x", lambda: {}["ids"]), "KeyError: 'ids'")

    def test_a_signal_stops_the_run(self):
        def interrupted():
            raise Interrupted(130)

        with self.assertRaises(Interrupted):
            self.run_.attempt("x", interrupted)

    def test_a_foreground_command_ends_before_a_signal_is_acted_on(self):
        harness.install_signal_handlers()
        signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(Interrupted(142)))
        # The command is started first: a signal during the start itself (a loaded machine
        # can take longer than the timer to fork) is not what this is about.
        t0 = time.monotonic()
        proc = subprocess.Popen(["sleep", "0.4"])
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        try:
            with self.assertRaises(Interrupted) as caught:
                harness.wait_child(proc)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
        self.assertEqual(caught.exception.code, 142)
        self.assertGreaterEqual(time.monotonic() - t0, 0.35)

    def test_cleanup_destroys_everything_and_removes_the_work_dir(self):
        a, b = self.applied_dir("ondemand-none"), self.applied_dir("density")
        self.run_.newdir("never-applied")
        self.run_.teardown(b)
        self.run_.cleanup()
        self.assertEqual(self.calls_made(), [f"-chdir={b} destroy -auto-approve -no-color -input=false -lock=false",
                                             f"-chdir={a} destroy -auto-approve -no-color -input=false -lock=false"])
        self.assertFalse(self.run_.work.exists())
        self.assertEqual(signal.getsignal(signal.SIGINT), signal.SIG_IGN)  # a second Ctrl-C waits for it


if __name__ == "__main__":
    unittest.main()
