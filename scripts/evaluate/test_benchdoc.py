"""The sections rendered from the benchmarks' JSON, against figures shaped as the benchmarks
write them (SDSEC_BENCH_JSON)."""

import json
import unittest

import benchdoc
import outputs


def lines(text):
    return text.splitlines()


def flat(text):
    """TEXT with its line breaks as spaces: the prose is wrapped to whatever the figures make it."""
    return " ".join(text.split())


def kernel(label, ready, serving, kernel_bytes, memory_mb, min_mb):
    return {"label": label, "ready_ms": ready, "serving_ms": serving, "cold_build_ms": [400.0, 420.0, 410.0],
            "cold_build_kernel_stored_ms": [120.0, 110.0, 130.0], "store_verified_ms": [30.0, 32.0, 31.0],
            "store_memoised_ms": [0.1, 0.2, 0.1, 0.1, 0.1], "kernel_bytes": kernel_bytes,
            "initramfs_bytes": 5767168, "image_dir_bytes": 5768192, "memory_mb": memory_mb,
            "min_memory_mb": min_mb, "tcg_cache_mb": 32}


BOOT = {
    "bench": "boot", "accel": "tcg", "cpus": 2, "app_bytes": 1354944, "boots": 2,
    "kernels": [kernel("sdsec", [900.0, 1100.0], [1000.0, 1200.0], 6291456, 128, 48),
                kernel("debian-cloud", [2900.0, 3100.0], [3000.0, 3200.0], 31457280, 128, 96)],
    "snapshot": {"label": "sdsec", "bytes": 26214400, "save_ms": 812.4, "verify_ms": [20.5, 21.5],
                 "start_ms": [150.0, 170.0], "run_ms": [171.0, 191.0]},
    "memory": [
        {"kernel": "sdsec", "hardening": "strict", "memory_mb": 128, "instances": 1, "pss_mib": 60.0,
         "rss_mib": 80.0, "booted_s": 1.2},
        {"kernel": "sdsec", "hardening": "strict", "memory_mb": 128, "instances": 5, "pss_mib": 50.0,
         "rss_mib": 78.0, "booted_s": 6.0},
        {"kernel": "sdsec", "hardening": "strict", "memory_mb": 128, "instances": 5, "pss_mib": 40.0,
         "rss_mib": 70.0, "ksm": {"full_scans": 2, "seconds": 14.2, "saved_mib": 45.3}},
        {"kernel": "sdsec", "hardening": "baseline", "memory_mb": 128, "instances": 1, "pss_mib": 30.0,
         "rss_mib": 50.0, "booted_s": 1.0},
        {"kernel": "debian-cloud", "hardening": "strict", "memory_mb": 128, "instances": 1, "pss_mib": 150.0,
         "rss_mib": 170.0, "booted_s": 3.0},
        {"kernel": "debian-cloud", "hardening": "strict", "memory_mb": 128, "instances": 5, "pss_mib": 125.0,
         "rss_mib": 160.0, "booted_s": 16.0},
    ],
}


class Lean(unittest.TestCase):
    def test_kernels_side_by_side(self):
        text = benchdoc.lean(BOOT, "")
        self.assertEqual(lines(text)[:4], [
            "| ms unless said: median (min–max) | sdsec's kernel | Debian's cloud kernel | sdsec / debian-cloud (medians) |",
            "|---|---|---|---|",
            "| boot: QEMU start → ready (n=2) | 1000 (900–1100) | 3000 (2900–3100) | 0.333× |",
            "| boot: QEMU start → serving (first authenticated 200) (n=2) | 1100 (1000–1200) | 3100 (3000–3200) | 0.355× |",
        ])
        self.assertIn("| image: cold build, fresh store (n=3) | 410.0 (400.0–420.0) | 410.0 (400.0–420.0) | 1× |", text)
        self.assertIn("| image from the store: first check in a process, ≥ 2 s after the build (n=3) "
                      "| 31.0 (30.0–32.0) | 31.0 (30.0–32.0) | 1× |\n|   ÷ cold build (medians) | 0.0756× | 0.0756× | |",
                      text)
        self.assertIn("| size: kernel file (stored once per digest) | 6.0 MiB (6291456 bytes) | 30.0 MiB (31457280 bytes) "
                      "| 0.2× |", text)
        self.assertIn("| image from the store: again (memoised) (n=5) | 0.10 (0.10–0.20) | 0.10 (0.10–0.20) | 1× |", text)
        self.assertIn("| guest memory (MiB): the policy's `memory_mb` / the kernel's minimum | 128 / 48 | 128 / 96 | |\n"
                      "| QEMU's TCG translation cache (MiB; used without KVM) | 32 | 32 | |\n", text)

    def test_snapshot_against_cold_boots(self):
        text = benchdoc.lean(BOOT, "")
        self.assertIn("| start of the same image (sdsec's kernel) | n | ms: median (min–max) | ÷ cold boot (medians) |\n"
                      "|---|---|---|---|\n"
                      "| cold boot: QEMU start → serving (the table above) | 2 | 1100 (1000–1200) | baseline |\n"
                      "| from its snapshot, as `sdsec run --snapshot`: verify the state, start → serving | 2 "
                      "| 181 (171–191) | 0.165× |\n"
                      "|   of which the start alone → serving | 2 | 160 (150–170) | 0.145× |\n"
                      "|   of which verifying the state (SHA-256, once per process) | 2 | 21.0 (20.5–21.5) | 0.0191× |\n"
                      "| snapshot: saving it (paused → on disk), once | 1 | 812 | |\n"
                      "| snapshot: size on disk | | 25.0 MiB (26214400 bytes) | |\n", text)

    def test_memory_beside_debians(self):
        text = benchdoc.lean(BOOT, "")
        self.assertIn("| kernel | hardening | guest MiB | instances at once | PSS per QEMU (MiB) | RSS per QEMU (MiB) "
                      "| PSS ÷ Debian's cloud kernel's, same count | booting the added ones took (s) |", text)
        self.assertIn("| sdsec's kernel | `strict` | 128 | 5 | 50.0 | 78.0 | 0.4× | 6 |", text)
        self.assertIn("| sdsec's kernel | `strict`, after KSM (2 full scans in 14 s, 45.3 MiB merged) | 128 | 5 | 40.0 "
                      "| 70.0 | 0.32× | – |", text)
        self.assertIn("| sdsec's kernel | `baseline` | 128 | 1 | 30.0 | 50.0 | 0.2× | 1 |", text)
        self.assertIn("| Debian's cloud kernel | `strict` | 128 | 5 | 125.0 | 160.0 | baseline | 16 |", text)

    def test_a_count_without_baseline_and_ksm_refused(self):
        memory = [{"kernel": "sdsec", "hardening": "strict", "memory_mb": 128, "instances": 20, "pss_mib": 45.0,
                   "rss_mib": 75.0, "booted_s": 40.0},
                  {"kernel": "sdsec", "hardening": "strict", "memory_mb": 128, "instances": 5,
                   "ksm": {"error": "KSM is not available on this host (/sys/kernel/mm/ksm/run: No such file)"}},
                  {"kernel": "sdsec", "hardening": "strict", "memory_mb": 64, "instances": 5,
                   "ksm": {"error": "a | b\nc"}}]
        text = benchdoc.lean({**BOOT, "memory": memory}, "")
        self.assertIn("| sdsec's kernel | `strict` | 128 | 20 | 45.0 | 75.0 | – | 40 |", text)
        self.assertIn("| sdsec's kernel | `strict` | 128 | 5 | KSM not measured: KSM is not available on this host "
                      "(/sys/kernel/mm/ksm/run: No such file) | | | |", text)
        self.assertIn("| 64 | 5 | KSM not measured: a   b c | | | |", text)  # the table stays a table

    def test_failed_part_way(self):
        partial = {k: BOOT[k] for k in ("bench", "accel", "cpus", "boots", "kernels")}
        text = benchdoc.lean(partial, "boot of bench-snapshot failed: timed out")
        self.assertIn("| boot: QEMU start → ready (n=2) |", text)
        self.assertNotIn("snapshot: size on disk", text)
        self.assertIn("\nfailed: boot of bench-snapshot failed: timed out\n\nFrom `cargo bench -p sdsec-engine", text)
        self.assertIn("(accelerator tcg, 2 CPUs)", text)

    def test_nothing(self):
        text = benchdoc.lean(None, "cargo is not on PATH")
        self.assertTrue(text.startswith("failed: cargo is not on PATH\n\nFrom `cargo bench"))
        self.assertIn("(accelerator not recorded)", text)
        self.assertIn("Boot: n boots per kernel", flat(text))
        self.assertIn("Boot: 3 boots per kernel", flat(benchdoc.lean(None, "boom", 3)))
        self.assertTrue(benchdoc.lean({"bench": "boot"}, "").startswith("failed: the benchmark gave no figures\n"))
        self.assertTrue(flat(text).endswith("[section 1](#1-time-to-a-protected-serving-instance)."))

    def test_in_guest_runtime_against_bare(self):
        guest = {"label": "sdsec", "connections": 8, "rounds": 2, "seconds": 3.0, "vcpus": 1, "memory_mb": 128,
                 "paths": [
                     {"key": "bare", "name": "bare: the application, forwarded to :8080", "requests": 29000,
                      "rps": 4880.0, "rps_by_round": [4533.0, 5227.0], "p50_ms": 1.492, "p99_ms": 5.299,
                      "cpu_us_per_request": {"qemu": 187.6, "load": 25.0}},
                     {"key": "runtime", "name": "runtime: its endpoint, forwarded to :80", "requests": 6200,
                      "rps": 1034.0, "rps_by_round": [889.0, 1179.0], "p50_ms": 7.874, "p99_ms": 16.594,
                      "cpu_us_per_request": {"qemu": 907.6, "load": 45.9}}]}
        text = benchdoc.lean({**BOOT, "in_guest": guest}, "")
        self.assertIn("\n\n| to the application in one guest (sdsec's kernel) | req/s (each round) | ÷ bare | p50 (ms) "
                      "| p99 (ms) | QEMU's CPU µs per request |\n"
                      "|---|---|---|---|---|---|\n"
                      "| bare: the application, forwarded to :8080 | 4880 (4533, 5227) | baseline | 1.49 | 5.30 | 188 |\n"
                      "| runtime: its endpoint, forwarded to :80 | 1034 (889, 1179) | 0.212× | 7.87 | 16.59 | 908 |\n\n"
                      "In a guest: one instance", text)
        self.assertIn("(sdsec's kernel, 1 vCPU, 128 MiB, accelerator tcg;", flat(text))
        self.assertIn("over 8 keep-alive connections with one request in flight each, 3.0 s per path and round, "
                      "bare first, 2 round(s) summed.", flat(text))
        # After the section's own paragraph, which still ends as it did.
        self.assertLess(flat(text).index("[section 1](#1-time-to-a-protected-serving-instance)."),
                        flat(text).index("In a guest:"))
        self.assertTrue(all(len(line) <= 92 for line in lines(text[text.index("In a guest:"):])))
        self.assertNotIn("In a guest:", benchdoc.lean(BOOT, ""))  # SDSEC_BENCH_GUEST=0: nothing

    def test_in_guest_failed(self):
        guest = {"label": "sdsec", "connections": 8, "rounds": 2, "seconds": 3.0,
                 "error": "bare: the application, forwarded to :8080: 127.0.0.1:41985: operation was canceled"}
        text = benchdoc.lean({**BOOT, "in_guest": guest}, "")
        self.assertIn(".\n\nfailed: bare: the application, forwarded to :8080: 127.0.0.1:41985: operation was "
                      "canceled\n\nIn a guest: one instance of the quickstart image (sdsec's kernel, ? vCPU", text)
        self.assertNotIn("| to the application in one guest", text)
        only = benchdoc.lean({"bench": "boot", "in_guest": {"label": "sdsec"}}, "")
        self.assertTrue(only.startswith("From `cargo bench"))  # the part alone is not "no figures"
        self.assertIn("failed: the part gave no figures\n\nIn a guest:", only)

    def test_one_kernel_has_no_ratio_column(self):
        text = benchdoc.lean({**BOOT, "kernels": BOOT["kernels"][:1], "memory": BOOT["memory"][:2]}, "")
        self.assertEqual(lines(text)[:3], [
            "| ms unless said: median (min–max) | sdsec's kernel |",
            "|---|---|",
            "| boot: QEMU start → ready (n=2) | 1000 (900–1100) |",
        ])
        self.assertIn("| PSS ÷ baseline |", text)
        self.assertIn("| sdsec's kernel | `strict` | 128 | 5 | 50.0 | 78.0 | – | 6 |", text)


OVERHEAD = {
    "bench": "overhead", "cpus": 2, "connections": 32, "rounds": 2, "seconds": 3.0,
    "workers": {"app": 0, "proxy": 0, "load": 0}, "nginx_skipped": None,
    "paths": [
        {"key": "direct", "name": "direct to the application", "requests": 60000, "rps": 10000.0, "p50_ms": 2.9,
         "p99_ms": 6.0, "cpu_us_per_request": {"app": 40.0, "proxy": 0.0, "load": 50.0}},
        {"key": "proxied", "name": "runtime, full policy", "requests": 40000, "rps": 6500.0, "p50_ms": 4.5,
         "p99_ms": 9.0, "cpu_us_per_request": {"app": 40.0, "proxy": 70.0, "load": 50.0}},
        {"key": "open", "name": "runtime, open plan", "requests": 42000, "rps": 7000.0, "p50_ms": 4.2,
         "p99_ms": 8.5, "cpu_us_per_request": {"app": 40.0, "proxy": 60.0, "load": 50.0}},
        {"key": "nginx", "name": "nginx, same checks", "requests": 36000, "rps": 5000.0, "p50_ms": 5.0,
         "p99_ms": 12.0, "cpu_us_per_request": {"app": 40.0, "proxy": 90.0, "load": 50.0}},
    ],
}


class Runtime(unittest.TestCase):
    def test_table(self):
        text = benchdoc.runtime(OVERHEAD, "")
        self.assertEqual(lines(text)[:6], [
            "| path | req/s | ÷ direct | ÷ nginx | p50 (ms) | p99 (ms) | p99 ÷ nginx's "
            "| CPU µs per request: application / proxy / load generator |",
            "|---|---|---|---|---|---|---|---|",
            "| direct to the application | 10000 | baseline | – | 2.900 | 6.000 | – | 40.0 / 0.0 / 50.0 |",
            "| runtime, full policy | 6500 | 0.65× | 1.3× | 4.500 | 9.000 | 0.75× | 40.0 / 70.0 / 50.0 |",
            "| runtime, open plan | 7000 | 0.7× | 1.4× | 4.200 | 8.500 | 0.708× | 40.0 / 60.0 / 50.0 |",
            "| nginx, same checks | 5000 | 0.5× | – | 5.000 | 12.000 | – | 40.0 / 90.0 / 50.0 |",
        ])
        self.assertIn("32 keep-alive connections with one request in flight each, for 3.0 s per path and round, the "
                      "paths in alternation, 2 round(s) summed; tokio worker threads: app 1 per core, proxy 1 per core, "
                      "load 1 per core; all on the same 2 cores", flat(text))
        self.assertTrue(all(len(line) <= 92 for line in lines(text)[7:]))
        self.assertTrue(flat(text).endswith("is in [section 2](#2-cost-of-protection); against the same guest's "
                                            "application reached directly, in "
                                            "[section 5](#5-lean-images-sdsecs-kernel-against-debians)."))

    def test_nginx_skipped(self):
        figures = {**OVERHEAD, "paths": OVERHEAD["paths"][:3],
                   "nginx_skipped": "nginx is not installed: `apt-get install -y nginx-light` (or `nginx`) adds that row"}
        text = benchdoc.runtime(figures, "")
        self.assertIn("| runtime, full policy | 6500 | 0.65× | – | 4.500 | 9.000 | – |", text)
        self.assertIn("\n\nnginx: not measured (nginx is not installed: `apt-get install -y nginx-light` (or `nginx`) "
                      "adds that row).\n\nFrom `cargo bench", text)

    def test_failed(self):
        text = benchdoc.runtime(None, "exit status 101", {"connections": 8, "rounds": 1, "seconds": "0.5"})
        self.assertTrue(text.startswith("failed: exit status 101\n\nFrom `cargo bench -p sdsec-guest"))
        self.assertIn("8 keep-alive connections with one request in flight each, for 0.5 s per path and round",
                      flat(text))


COMPILE = {
    "bench": "compile", "cpus": 2, "goal_ms": 50.0,
    "document": {"unikernels": 1000, "hypervisors": 10, "policies": 3000, "bytes": 1258291, "lines": 21000,
                 "merged_plans": 1000},
    "parse": {"wall_ms": [4.0, 5.0, 6.0], "cpu_ms": [3.9, 4.9, 5.9]},
    "compile": {"wall_ms": [30.0, 32.0, 40.0], "cpu_ms": [29.0, 31.0, 39.0]},
}


class Compile(unittest.TestCase):
    def test_table(self):
        text = benchdoc.compile_time(COMPILE, "", "5")
        self.assertEqual(lines(text)[:4], [
            "| stage | n | wall time per compile (ms) | CPU time per compile (ms) | ÷ parse (medians: wall, CPU) |",
            "|---|---|---|---|---|",
            "| parse (YAML to the syntax tree) | 3 | 5.00 (4.00–6.00) | 4.90 (3.90–5.90) | baseline |",
            "| whole compile (parse, resolve, check, lower to plans) | 3 | 32.00 (30.00–40.00) | 31.00 (29.00–39.00) "
            "| 6.4×, 6.33× |",
        ])
        self.assertIn("a generated SecTOSCA document of 1000 unikernels on 10 hypervisors with 3000 policies",
                      flat(text))
        self.assertIn("(21000 lines, 1228 KiB; 1000 plans merge several policies)", flat(text))
        self.assertIn("Per unikernel: 32.0 µs (wall, median). Issue 14 aims at ≤ 50 ms", flat(text))
        self.assertIn("in about 5 s per stage (`--measurement-time`)", flat(text))

    def test_failed(self):
        text = benchdoc.compile_time(None, "error: could not compile `sdsec-sectosca`", "5")
        self.assertTrue(text.startswith("failed: error: could not compile `sdsec-sectosca`\n\nFrom `cargo bench"))
        self.assertIn("Per unikernel: – (wall", flat(text))


class Summaries(unittest.TestCase):
    def test_each_fixture_reads_as_its_benchmark(self):
        for figures, name in ((BOOT, "boot"), (OVERHEAD, "overhead"), (COMPILE, "compile")):
            self.assertEqual(outputs.bench_summary(json.dumps(figures), name), figures)

    def test_another_benchmark_or_no_json(self):
        with self.assertRaisesRegex(ValueError, "not the figures of the boot benchmark"):
            outputs.bench_summary(json.dumps(OVERHEAD), "boot")
        with self.assertRaisesRegex(ValueError, "not the figures"):
            outputs.bench_summary("[]", "boot")
        with self.assertRaises(ValueError):
            outputs.bench_summary('{"bench": "boot"', "boot")


if __name__ == "__main__":
    unittest.main()
