"""The document's layout, against rows and lines of docs/guides/benchmarks.md as evaluate.sh wrote them."""

import unittest

import render


def lines(text):
    return text.splitlines()


class Ondemand(unittest.TestCase):
    RESULTS = {
        "ondemand-none.t200": [4.11, 4.15, 4.19, 4.5, 4.70],
        "ondemand-none.apply": [4.23, 4.3, 4.36, 4.4, 4.93],
        "ondemand-none.boot": [3418, 3500, 3562, 3600, 4151],
    }

    def test_table(self):
        results = {**self.RESULTS, "ondemand-snapshot.t200": [0.9, 1.1, 1.0], "ondemand-snapshot.apply": [1.2],
                   "ondemand-snapshot.boot": [310, 290]}
        text = render.ondemand(results, {"none": "", "image": "terraform apply failed: boom",
                                         "paused": "not run (EVAL_ONDEMAND_MODES)", "snapshot": ""}, 2)
        self.assertEqual(lines(text)[:6], [
            "| start from | n | `terraform apply` start → first authenticated 200 (s) | ÷ on demand (medians) "
            "| `terraform apply` (s) | provider `boot_ms` (ms) |",
            "|---|---|---|---|---|---|",
            "| on-demand generation + boot (`sdsec_unikernel` alone) | 5 | 4.19 (4.11–4.70) | baseline "
            "| 4.36 (4.23–4.93) | 3562 (3418–4151) |",
            '| pool of pre-built images (`warm = "image"`, size 2) | – | failed: terraform apply failed: boom | | | |',
            '| pool of paused instances (`warm = "paused"`, size 2) | – | not run (EVAL_ONDEMAND_MODES) | | | |',
            '| pool of snapshot copies (`warm = "snapshot"`, size 2) | 3 | 1.00 (0.90–1.10) | 0.239× | 1.20 | 300 (290–310) |',
        ])
        self.assertEqual(lines(text)[6], "")
        self.assertTrue(lines(text)[7].startswith("Cells are median (min–max) over n runs."))
        self.assertIn("[snapshots.md](snapshots.md)", text)
        self.assertTrue(text.endswith("clock and address before it serves: [snapshots.md](snapshots.md)).\n"))

    def test_rows_and_a_failure_of_the_same_mode(self):
        text = render.ondemand(self.RESULTS, {"none": "no authenticated 200"}, 2)
        self.assertIn("| on-demand generation + boot (`sdsec_unikernel` alone) | – | failed: no authenticated 200 | | | |",
                      text)
        self.assertIn("| 5 | 4.19 (4.11–4.70) | baseline |", text)

    def test_no_baseline_no_ratio(self):
        results = {"ondemand-paused.t200": [0.67], "ondemand-paused.apply": [0.86], "ondemand-paused.boot": [13]}
        self.assertIn('| pool of paused instances (`warm = "paused"`, size 2) | 1 | 0.67 | – | 0.86 | 13 |',
                      render.ondemand(results, {"none": "failed"}, 2))


class Protection(unittest.TestCase):
    RESULTS = {
        "size.initramfs": [2505930], "size.kernel": [53243444],
        "size.app": [1354944],
        "protected.boot": [2747, 3000, 3164, 3500, 3756],
        "unprotected.start_ms": [2.0, 2.0, 2.1, 2.2, 2.6],
        "protected.rps": [430.2, 454.5, 519.5], "unprotected.rps": [4804.0, 5229.5, 5327.0],
        "protected.p50_ms": [6.91, 7.88, 8.48], "unprotected.p50_ms": [0.59, 0.60, 0.60],
        "protected.p99_ms": [20.81, 22.91, 22.92], "unprotected.p99_ms": [3.05, 3.24, 4.14],
        "protected.ok": [2000, 2000, 2000], "unprotected.ok": [2000, 2000, 2000],
    }

    def test_table_as_in_the_document(self):
        text = render.protection(self.RESULTS, "", "", "tcg", 2000, 4, 2)
        self.assertEqual(lines(text)[:10], [
            "| | protected (sdsec unikernel, guest under tcg) | unprotected (host process) | protected / unprotected |",
            "|---|---|---|---|",
            "| size: whole image | 53.2 MiB (55749374 bytes) (initramfs + kernel) | executable: 1.3 MiB (1354944 bytes) | 41.1× |",
            "| size: initramfs (`initramfs.cpio`: runtime + application, uncompressed) | 2.4 MiB (2505930 bytes) "
            "| 1.3 MiB (1354944 bytes) | 1.85× |",
            "| size: kernel (sdsec's uncompressed `vmlinux`, stored once, shared by every image booting it) "
            "| 50.8 MiB (53243444 bytes) | – | |",
            "| start to serving (ms) | `boot_ms` 3164 (2747–3756), n=5 | spawn → first 200: 2.1 (2.0–2.6), n=5 | 1507× |",
            "| throughput (requests/s) | 454.5 (430.2–519.5), n=3 | 5229.5 (4804.0–5327.0), n=3 | 0.0869× |",
            "| p50 latency (ms) | 7.88 (6.91–8.48) | 0.60 (0.59–0.60) | 13.1× |",
            "| p99 latency (ms) | 22.91 (20.81–22.92) | 3.24 (3.05–4.14) | 7.07× |",
            "| answers 200 per load test | 2000 of 2000 | 2000 of 2000 | |",
        ])
        self.assertIn("(scripts/evaluate/evaltool.py: 4\nthreads, one keep-alive connection each, 2000 GET `/items`", text)
        self.assertIn("on the same 2 cores, so the unprotected throughput is bounded by the client itself. "
                      "**The guest runs under TCG", text)

    def test_nothing_measured(self):
        text = render.protection({}, "image directory x not found", "exit status 1", None, 2000, 4, 2)
        self.assertIn("guest under tcg", lines(text)[0])
        self.assertIn("| size: whole image |  (initramfs + kernel) | executable:  | – |", text)
        self.assertIn("| start to serving (ms) | `boot_ms` –, n=0 | spawn → first 200: –, n=0 | – |", text)
        self.assertIn("| protected | failed: image directory x not found | | |", text)
        self.assertIn("| unprotected | | failed: exit status 1 | |", text)

    def test_kvm(self):
        text = render.protection(self.RESULTS, "", "", "kvm", 2000, 4, 2)
        self.assertIn("guest under kvm", text)
        self.assertIn("client itself. The guest runs under KVM.\n", text)


class Propagation(unittest.TestCase):
    def test_rows_kept_and_warmups(self):
        results = {
            "prop-inplace-5.all": [1.62], "prop-inplace-5.first": [1.42], "prop-inplace-5.apply": [1.78],
            "prop-inplace-5.each": [1.42, 1.5, 1.55, 1.6, 1.62], "prop-inplace-5.kept": [5],
            "prop-staged-1.all": [0.92], "prop-staged-1.first": [0.92], "prop-staged-1.apply": [1.2],
            "prop-staged-1.each": [0.92], "prop-staged-1.kept": [0], "prop-staged-1.warmup": [4.39],
            "prop-staged-10.warmup": [31.58, 30.0],
        }
        text = render.propagation(results, {"replace": "not every instance enforced the change",
                                            "pool": "not run (EVAL_PROP_MODES)"}, [1, 5, 10], "0.1")
        self.assertEqual(lines(text)[:6], [
            "| mode | N | n | apply start → all N enforce (s) | → first enforces (s) | per instance (s) | `terraform apply` (s) | instance ids kept |",
            "|---|---|---|---|---|---|---|---|",
            "| in place (principal added) | 5 | 1 | 1.62 | 1.42 | 1.55 (1.42–1.62) | 1.78 | 5/5 |",
            "| replacement, no pool (principal + hardening level) | – | – | failed: not every instance enforced the change | | | | |",
            "| replacement from a paused pool (same change) | – | – | not run (EVAL_PROP_MODES) | | | | |",
            "| replacement from a pool warmed first (same change) | 1 | 1 | 0.92 | 0.92 | 0.92 | 1.20 | 0/1 |",
        ])
        self.assertIn("probes each every 0.1 s on a fresh connection", text)
        self.assertIn("in the row: N=1 4.39 s; N=10 30.79 (30.00–31.58) s), then the timed\n", text)
        self.assertTrue(text.endswith("Scaling to N between rows is not timed.\n"))

    def test_two_runs_kept(self):
        results = {"prop-replace-1.all": [5.2, 5.0], "prop-replace-1.kept": [0, 1]}
        self.assertIn("| 1 | 2 | 5.10 (5.00–5.20) | – | – | – | 0/1, 1/1 |", render.propagation(results, {}, [1], "0.1"))


class Density(unittest.TestCase):
    def test_table(self):
        results = {"running.rss": [264.9, 264.9, 264.9], "running.pss": [226.8, 226.7, 226.8]}
        text = render.density(results, 23555, "", "not measured, as the running instances failed", 3, 2)
        self.assertEqual(lines(text)[:6], [
            "MemAvailable before booting anything: 23555 MiB; guest memory per instance: 128 MiB (the quickstart node's `memory_mb`).",
            "",
            "| instance | n | QEMU RSS (MiB) | QEMU PSS (MiB) | PSS of all n (MiB) | fit in MemAvailable (estimate, by PSS) |",
            "|---|---|---|---|---|---|",
            "| running | 3 | 264.9 | 226.8 (226.7–226.8) | 680.3 | ~103 |",
            "| paused | – | failed: not measured, as the running instances failed | | | |",
        ])
        self.assertIn("\n3 instances of the example API", text)
        self.assertIn("share 2 cores under TCG", text)

    def test_paused_label(self):
        results = {"paused.rss": [258.6], "paused.pss": [211.4]}
        self.assertIn('| paused (pool member, `warm = "paused"`) | 1 | 258.6 | 211.4 | 211.4 | ~111 |',
                      render.density(results, 23555, "", "", 3, 2))


class Document(unittest.TestCase):
    MACHINE = [("date", "2026-11-27 02:48 UTC"), ("commit", "`bedb688` (provider binary built 2026-11-27 02:36 UTC)")]

    def test_layout(self):
        text = render.document(["density", "ondemand"], self.MACHINE, {"ondemand": "ONDEMAND\n", "density": "DENSITY\n"})
        self.assertEqual(lines(text), [
            "---",
            'page_title: "Benchmarks"',
            'subcategory: "Guides"',
            "description: |-",
            "  Figures from one run of the evaluation on one machine: time to a protected, serving instance on demand, from "
            "pools and from a snapshot, the cost of protection, policy propagation, density, boot, size and memory with "
            "sdsec's kernel and Debian's, runtime overhead and compile time, each beside its baseline from the same run.",
            "---",
            "",
            "# Benchmarks",
            "",
            "Written by `scripts/evaluate.sh` (sections run: density ondemand); rerun it to refresh. Medians with",
            "their spread, median (min–max), and n, the number of samples. Networking figures (the bridge",
            "against QEMU's user network) are in [networking.md](networking.md#figures-the-bridge-against-qemus-user-network),",
            "from `cargo bench -p sdsec-engine --bench network`.",
            "",
            "| | |",
            "|---|---|",
            "| date | 2026-11-27 02:48 UTC |",
            "| commit | `bedb688` (provider binary built 2026-11-27 02:36 UTC) |",
            "",
            "## 1. Time to a protected, serving instance",
            "",
            "ONDEMAND",
            "",
            "## 2. Cost of protection",
            "",
            "Not run (`scripts/evaluate.sh protection` runs it).",
            "",
            "## 3. Policy propagation",
            "",
            "Not run (`scripts/evaluate.sh propagation` runs it).",
            "",
            "## 4. Density",
            "",
            "DENSITY",
            "",
            "## 5. Lean images: sdsec's kernel against Debian's",
            "",
            "Not run (`scripts/evaluate.sh lean` runs it).",
            "",
            "## 6. Runtime overhead on the host",
            "",
            "Not run (`scripts/evaluate.sh runtime` runs it).",
            "",
            "## 7. Compile time",
            "",
            "Not run (`scripts/evaluate.sh compile` runs it).",
        ])
        self.assertTrue(text.endswith("runs it).\n"))

    def test_accelerator_line(self):
        self.assertEqual(render.accel_line("tcg", False), "tcg (the `accel` the instances recorded)")
        self.assertEqual(render.accel_line(None, False), "tcg (no vmx/svm)")
        self.assertEqual(render.accel_line(None, True), "not observed (no instance booted in this run)")

    def test_failed(self):
        self.assertEqual(render.failed("not run (EVAL_PROP_MODES)"), "not run (EVAL_PROP_MODES)")
        self.assertEqual(render.failed("boom"), "failed: boom")


if __name__ == "__main__":
    unittest.main()
