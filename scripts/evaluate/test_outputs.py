import json
import unittest

import outputs


class TerraformOutputs(unittest.TestCase):
    OUT = json.dumps({
        "ids": {"sensitive": False, "type": ["tuple", ["string"]], "value": ["a1", "b2"]},
        "boot_ms": {"sensitive": False, "type": ["tuple", ["number"]], "value": [3562]},
        "pool_ready": {"sensitive": False, "type": "number", "value": 2},
        "gone": {"sensitive": False, "type": "dynamic", "value": None},
    })

    def test_lists_scalars_null_missing(self):
        self.assertEqual(outputs.output_values(self.OUT, "ids"), ["a1", "b2"])
        self.assertEqual(outputs.output_values(self.OUT, "boot_ms"), [3562])
        self.assertEqual(outputs.output_values(self.OUT, "pool_ready"), [2])
        self.assertEqual(outputs.output_values(self.OUT, "gone"), [])
        self.assertEqual(outputs.output_values(self.OUT, "pool_members"), [])

    def test_first_error_of_a_failed_command(self):
        log = "Initializing...\n\nError: Pool not known\n\n  with sdsec_pool.api,\nError: second\n"
        excerpt, error = outputs.terraform_error(log)
        self.assertEqual(error, "Pool not known")
        self.assertTrue(excerpt.startswith("Error: Pool not known\n"))
        self.assertIn("Error: second", excerpt)
        self.assertEqual(outputs.terraform_error("".join(f"Error: {i}\n" for i in range(40)))[0].count("\n"), 24)
        self.assertEqual(outputs.terraform_error("Apply complete!\n"), ("", ""))


class StateAndProc(unittest.TestCase):
    def test_accel(self):
        self.assertEqual(outputs.accel_of('{"id": "x", "accel": "tcg", "boot_ms": 3}'), "tcg")
        self.assertIsNone(outputs.accel_of('{"id": "x"}'))
        self.assertIsNone(outputs.accel_of('{"id": '))  # being written

    def test_memory(self):
        status = "Name:\tqemu-system-x86\nVmPeak:\t  999 kB\nVmRSS:\t  271257 kB\n"
        smaps = "00400000-7ffd r-xp 00000000 00:00 0 [rollup]\nRss:  271257 kB\nPss:  232243 kB\n"
        rss, pss = outputs.rss_pss_mib(status, smaps)
        self.assertAlmostEqual(rss, 264.899, places=3)
        self.assertAlmostEqual(pss, 226.800, places=3)
        self.assertEqual(outputs.rss_pss_mib("", ""), (None, None))
        self.assertEqual(outputs.proc_kib("MemTotal: 24641024 kB\nMemAvailable: 24120320 kB\n", "MemAvailable"), 24120320)

    def test_cpuinfo_and_loadavg(self):
        cpuinfo = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor @ 2.80GHz\nflags\t\t: fpu sse2 hypervisor\n"
                   "processor\t: 1\nmodel name\t: other\n")
        self.assertEqual(outputs.cpu_model(cpuinfo), "Intel(R) Xeon(R) Processor @ 2.80GHz")
        self.assertEqual(outputs.cpu_model(""), "")
        self.assertFalse(outputs.has_virtualisation(cpuinfo))
        self.assertTrue(outputs.has_virtualisation("flags\t: fpu vmx sse2\n"))
        self.assertTrue(outputs.has_virtualisation("flags\t: fpu svm\n"))
        self.assertFalse(outputs.has_virtualisation("flags\t: fpu vmxnet\n"))
        self.assertEqual(outputs.loadavg("6.92 8.48 5.91 3/512 12345\n"), "6.92 8.48 5.91")

    def test_started_by_us(self):
        cmdline = b"qemu-system-x86_64\0-pidfile\0/tmp/sdsec-eval.x/prop-pool/state/instances/a/qemu.pid\0"
        self.assertTrue(outputs.started_by_us(cmdline, "/tmp/sdsec-eval.x/prop-pool/state"))
        self.assertFalse(outputs.started_by_us(cmdline, "/tmp/sdsec-eval.x/density/state"))
        self.assertFalse(outputs.started_by_us(b"", "/tmp/sdsec-eval.x/density/state"))


class Tools(unittest.TestCase):
    def test_load_result(self):
        line = json.dumps({"requests": 2000, "rps": 454.5, "p50_ms": 7.88, "p99_ms": 22.91, "ok": 2000,
                           "statuses": {"200": 2000}, "errors": 0})
        self.assertEqual(outputs.load_result(line), {"rps": 454.5, "p50_ms": 7.88, "p99_ms": 22.91, "ok": 2000.0})

    def test_startup_seconds(self):
        self.assertEqual(outputs.startup_seconds("0.0021\n0.0020\n"), [0.0021, 0.0020])
        self.assertEqual(outputs.startup_seconds(""), [])

    def test_enforce_times_in_wanted_order(self):
        text = json.dumps({"seen": {"b": 1.5, "a": 0.7, "old": 0.1}, "wanted": ["a", "b"], "missing": []})
        self.assertEqual(outputs.enforce_times(text), [0.7, 1.5])
        with self.assertRaises(ValueError):
            outputs.enforce_times(json.dumps({"seen": {"a": 1}, "wanted": ["a", "c"], "missing": ["c"]}))
        with self.assertRaises(ValueError):
            outputs.enforce_times(json.dumps({"seen": {}, "wanted": [], "missing": []}))

    def test_error_summary(self):
        self.assertEqual(outputs.error_summary("terraform apply failed: a | b\nc  \n"), "terraform apply failed: a   b c")
        self.assertEqual(len(outputs.error_summary("x" * 1000)), 400)


if __name__ == "__main__":
    unittest.main()
