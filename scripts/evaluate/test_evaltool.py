import hashlib
import re
import unittest
from pathlib import Path

import evaltool

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "policy.yaml"


class RewritePolicy(unittest.TestCase):
    """The rewrite works on the quickstart policy as it is in the tree: if it changes shape,
    this fails here rather than an hour into an evaluation."""

    def setUp(self):
        self.base = QUICKSTART.read_text(encoding="utf-8")

    def test_principals_are_added_after_the_deployer(self):
        text = evaltool.rewrite_policy(self.base, ["eval-inplace-1-1=tok-a", "eval-inplace-1-2=tok-b"])
        digest = hashlib.sha256(b"tok-a").hexdigest()
        block = re.search(r"^( *)- name: deployer\n(?:\1  .*\n)+", text, flags=re.M)
        indent = block.group(1)
        after = text[block.end():]
        self.assertTrue(after.startswith(f'{indent}- name: eval-inplace-1-1\n{indent}  token_sha256: "{digest}"\n'
                                         f"{indent}  roles: [reader]\n{indent}- name: eval-inplace-1-2\n"))
        self.assertEqual(len(text.splitlines()), len(self.base.splitlines()) + 6)  # three lines each, nothing else

    def test_level(self):
        text = evaltool.rewrite_policy(self.base, level="baseline")
        self.assertIn("properties: { level: baseline, max_lifetime: 24h }", text)
        self.assertEqual(text.count("level: baseline"), 1)
        self.assertEqual(evaltool.rewrite_policy(text, level="strict"), self.base)

    def test_rate(self):
        text = evaltool.rewrite_policy(self.base, rate=1000000)
        self.assertIn("rate_limit: { requests_per_second: 1000000, burst: 1000000, per: source }", text)
        # Only the firewall's own limit: the adaptation's rate limit stays as it is.
        self.assertIn("then: { api_fw: { rate_limit: { requests_per_second: 5, burst: 10 } } }", text)

    def test_nothing_asked_changes_nothing(self):
        self.assertEqual(evaltool.rewrite_policy(self.base), self.base)

    def test_missing_parts_are_named(self):
        with self.assertRaisesRegex(ValueError, "deployer principal"):
            evaltool.rewrite_policy("policies: []\n", ["a=b"])
        with self.assertRaisesRegex(ValueError, "Hardening level"):
            evaltool.rewrite_policy("policies: []\n", level="strict")
        with self.assertRaisesRegex(ValueError, "rate_limit"):
            evaltool.rewrite_policy("policies: []\n", rate=5)


class Small(unittest.TestCase):
    def test_percentile_nearest_rank(self):
        values = [float(i) for i in range(1, 101)]
        self.assertEqual(evaltool.percentile(values, 50), 50.0)
        self.assertEqual(evaltool.percentile(values, 99), 99.0)
        self.assertEqual(evaltool.percentile([7.0], 99), 7.0)

    def test_split_url(self):
        self.assertEqual(evaltool.split_url("127.0.0.1:41234"), ("127.0.0.1", 41234))
        self.assertEqual(evaltool.split_url("http://localhost"), ("localhost", 80))

    def test_free_port(self):
        self.assertGreater(evaltool.free_port(), 0)


if __name__ == "__main__":
    unittest.main()
