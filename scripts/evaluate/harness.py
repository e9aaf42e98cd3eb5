"""The evaluation's plumbing: progress on stderr, child processes, Terraform work directories,
and the guarantee that everything applied is destroyed whatever happens.

Foreground commands (terraform, sdsec, the load generator) run to their end even when a
signal arrives, as bash's traps waited for them: a `terraform apply` cut short could lose the
state that names the VMs it started. The signal is acted on as soon as the command returns.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from pathlib import Path

import outputs
import tfconfig

DEVNULL = subprocess.DEVNULL
SIGNAL_CODES = {signal.SIGHUP: 129, signal.SIGINT: 130, signal.SIGTERM: 143}
EXIT_BROKEN_PIPE = 141  # stderr's reader went away: stop, and still clean up


class Failure(Exception):
    """A measurement failed, for a reason short enough to go into a table cell."""


class Interrupted(BaseException):
    """A signal asked the run to stop; CODE is the exit status (128 + the signal). A
    BaseException, so that no `except Exception` of a measurement swallows it."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


_quiet = False  # set while cleaning up: nothing may interrupt that


def log(message):
    """One line of progress on stderr, with the time."""
    global _quiet
    try:
        sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
        sys.stderr.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # later writes, and the children's, go nowhere
        if not _quiet:
            _quiet = True
            raise Interrupted(EXIT_BROKEN_PIPE) from None


def die(message):
    log(f"error: {message}")
    raise Failure(message)


def install_signal_handlers():
    def on_signal(signum, _frame):
        raise Interrupted(SIGNAL_CODES[signum])

    for sig in SIGNAL_CODES:
        signal.signal(sig, on_signal)


def ignore_signals():
    """A second Ctrl-C must not cut the clean-up short; the commands it runs inherit this."""
    global _quiet
    _quiet = True
    for sig in SIGNAL_CODES:
        signal.signal(sig, signal.SIG_IGN)


def wait_child(proc):
    """Wait for a foreground command to end even if a signal arrives meanwhile; then raise the
    first such signal's Interrupted, or return the exit status."""
    pending = None
    while True:
        try:
            proc.wait()
            break
        except Interrupted as e:
            pending = pending or e
    if pending:
        raise pending
    return proc.returncode


def run(argv, stdout=DEVNULL, stderr=DEVNULL):
    """Run a foreground command to its end; its exit status."""
    return wait_child(subprocess.Popen([str(a) for a in argv], stdin=DEVNULL, stdout=stdout, stderr=stderr))


def run_group(argv, out, env=None, cwd=None):
    """Run a command (a cargo benchmark) in a process group of its own, its output to the file
    OUT, to its end; its exit status. On a signal the whole group is ended first (a benchmark
    holds no state worth finishing, and can take minutes), then the signal's Interrupted raised;
    what the group started in sessions of its own (QEMU, nginx) is for Run.sweep."""
    proc = subprocess.Popen([str(a) for a in argv], stdin=DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                            cwd=cwd, start_new_session=True)
    try:
        return proc.wait()
    except Interrupted:
        ignore_signals()  # the run is ending: nothing may cut this short
        end_group(proc)
        raise


def end_group(proc, grace=10.0):
    """SIGTERM to PROC's process group, SIGKILL after GRACE seconds; reaps PROC."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            pass  # the group is gone
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def capture(argv, stderr=DEVNULL):
    """Run a foreground command to its end: (exit status, its standard output)."""
    with tempfile.TemporaryFile() as f:  # a file, not a pipe: nothing to drain if interrupted
        rc = run(argv, stdout=f, stderr=stderr)
        f.seek(0)
        return rc, f.read().decode(errors="replace")


def _zombie(pid):
    """Whether PID has exited and waits for its parent to reap it (it holds nothing any more)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


class Run:
    """One evaluation: its temporary work directory (one sub-directory, with its own state
    directory, per Terraform configuration), the background processes it started, and the
    figures it measured (RESULTS: quantity -> values)."""

    def __init__(self, root, terraform, sdsec, app, work):
        self.root, self.terraform, self.sdsec, self.app = Path(root), Path(terraform), Path(sdsec), Path(app)
        self.work = Path(work)
        self.background = []
        self.swept = []  # directories whose processes the clean-up ends (see sweep)
        self.results = defaultdict(list)
        self.accel = None  # the accelerator the last instance looked at recorded

    def add(self, key, value):
        self.results[key].append(value)

    # ------------------------------------------------------------------ background processes

    def start_background(self, argv):
        proc = subprocess.Popen([str(a) for a in argv], stdin=DEVNULL)
        self.background.append(proc)
        return proc

    def wait_background(self, proc):
        """Wait for a background process, interruptibly (as bash's `wait`); its exit status."""
        return proc.wait()

    def stop_background(self):
        """Stop the background processes this run started that still run (pollers, the
        unprotected application)."""
        for proc in self.background:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.background = []

    def sweep(self, path, grace=10.0):
        """End every process whose command line names PATH (a directory of this run given to a
        benchmark as its TMPDIR): a QEMU or nginx a benchmark killed by a signal could not stop.
        Returns how many there were."""
        needle = str(path)
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # gone, or not ours to read
            if outputs.started_by_us(cmdline, needle):
                pids.append(int(entry.name))
        found = len(pids)
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            alive = []
            for pid in pids:
                try:
                    os.kill(pid, sig)
                    alive.append(pid)
                except OSError:
                    pass
            deadline = time.time() + wait
            while alive and time.time() < deadline:
                time.sleep(0.1)
                alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
            pids = alive
            if not pids:
                break
        return found

    # --------------------------------------------------------------------------- terraform

    def newdir(self, name):
        """A fresh Terraform work directory."""
        d = self.work / name
        shutil.rmtree(d, ignore_errors=True)
        (d / "state").mkdir(parents=True)
        return d

    def write_config(self, d, count, warm="none", pool_size=0, use_pool=False, create_before_destroy=False):
        text = tfconfig.main_tf(d, self.app, count, warm, pool_size, use_pool, create_before_destroy)
        (d / "main.tf").write_text(text, encoding="utf-8")

    def tf(self, d, *args):
        """terraform in D, its output appended to D/tf.log; a failure shows its error."""
        log_path = d / "tf.log"
        start = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as f:
            rc = run([self.terraform, f"-chdir={d}", *args, "-no-color", "-input=false"],
                     stdout=f, stderr=subprocess.STDOUT)
        if rc != 0:
            with open(log_path, "rb") as f:
                f.seek(start)
                excerpt, error = outputs.terraform_error(f.read().decode(errors="replace"))
            if excerpt:
                sys.stderr.write(excerpt + "\n")
            die(f"terraform {args[0]} failed: {error or f'exit status {rc}, see {log_path}'}")

    def apply(self, d):
        self.tf(d, "apply", "-auto-approve")
        rc, text = capture([self.terraform, f"-chdir={d}", "output", "-json"])
        if rc != 0:
            die(f"terraform output failed in {d} (exit status {rc})")
        (d / "out.json").write_text(text, encoding="utf-8")

    def out(self, d, key):
        """The values of one output as of the last apply in D."""
        return outputs.output_values((d / "out.json").read_text(encoding="utf-8"), key)

    def note_accel(self, d):
        for record in sorted((d / "state" / "instances").glob("*/instance.json")):
            try:
                accel = outputs.accel_of(record.read_text(encoding="utf-8"))
            except OSError:
                continue
            if accel:
                self.accel = accel
                return

    def teardown(self, d):
        """Destroy what Terraform applied in D, then stop whatever its state directory still runs."""
        if not (d / "main.tf").is_file() or (d / ".down").exists():
            return
        if (d / "terraform.tfstate").is_file():
            log(f"destroying {d.name}")
            with open(d / "tf.log", "ab") as f:
                rc = run([self.terraform, f"-chdir={d}", "destroy", "-auto-approve", "-no-color", "-input=false",
                          "-lock=false"], stdout=f, stderr=subprocess.STDOUT)
            if rc != 0:
                log(f"warning: terraform destroy failed in {d}; stopping its instances directly")
        instances = d / "state" / "instances"
        if instances.is_dir():
            run([self.sdsec, "--state-dir", d / "state", "stop", "--all"])
            for pid_file in sorted(instances.glob("*/qemu.pid")):
                try:
                    pid = int(pid_file.read_text().strip())
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        ours = outputs.started_by_us(f.read(), f"{d}/state")
                    if ours:  # only a QEMU of this run: never a pid reused by someone else
                        os.kill(pid, signal.SIGTERM)
                except (OSError, ValueError):
                    pass  # gone already
        (d / ".down").touch()

    # ---------------------------------------------------------------------------- attempts

    def attempt(self, prefix, fn, *args):
        """Run one measurement; afterwards stop the background processes and tear down every
        work directory named PREFIX*. Never raises for a failure: returns why it failed, ""
        if it did not. A signal still stops the whole run."""
        try:
            fn(*args)
            error = ""
        except Failure as e:
            error = str(e)
        except Exception as e:  # a bug or an unexpected output: its trace on stderr, its gist in the table
            sys.stderr.write(traceback.format_exc())
            error = f"{type(e).__name__}: {e}"
        self.stop_background()
        for d in sorted(self.work.glob(prefix + "*")):
            if d.is_dir():
                self.teardown(d)
        if error:
            error = outputs.error_summary(error) or "failed, see the log on stderr"
            log(f"FAILED ({prefix}): {error}")
        return error

    def cleanup(self):
        """Destroy everything this run applied and remove the work directory. Idempotent."""
        ignore_signals()
        log("cleaning up (destroying everything this run applied)")
        self.stop_background()
        for d in self.swept:
            ended = self.sweep(d)
            if ended:
                log(f"ended {ended} process(es) a benchmark left running in {d}")
        for d in sorted(p for p in self.work.glob("*") if p.is_dir()):
            try:
                self.teardown(d)
            except Exception as e:  # go on with the others whatever this one did
                log(f"warning: tearing down {d} failed: {e}")
        shutil.rmtree(self.work, ignore_errors=True)
