import unittest

from stats import DASH, cell, fit, kept, median, mib, ratio, rounded, total


class Median(unittest.TestCase):
    def test_odd_even_empty(self):
        self.assertEqual(median([3.0, 1.0, 2.0]), 2.0)
        self.assertEqual(median([4.0, 1.0, 2.0, 3.0]), 2.5)
        self.assertIsNone(median([]))


class Cell(unittest.TestCase):
    def test_median_and_spread(self):
        self.assertEqual(cell([4.19, 4.11, 4.70, 4.2, 4.15]), "4.19 (4.11–4.70)")

    def test_digits(self):
        self.assertEqual(cell([3562.0, 3418.0, 4151.0], 0), "3562 (3418–4151)")
        self.assertEqual(cell([454.5, 430.2, 519.5], 1), "454.5 (430.2–519.5)")

    def test_one_value_or_all_equal_has_no_spread(self):
        self.assertEqual(cell([0.73]), "0.73")
        self.assertEqual(cell([264.9, 264.9, 264.9], 1), "264.9")
        self.assertEqual(cell([0.487, 0.493]), "0.49")  # a spread too small to print

    def test_even_count_takes_the_mean_of_the_middle_two(self):
        self.assertEqual(cell([1.0, 2.0, 3.0, 10.0]), "2.50 (1.00–10.00)")

    def test_empty(self):
        self.assertEqual(cell([]), DASH)


class Ratio(unittest.TestCase):
    def test_three_significant_digits(self):
        self.assertEqual(ratio(55749374, 1354944), "41.1×")
        self.assertEqual(ratio(2505930, 1354944), "1.85×")
        self.assertEqual(ratio(454.5, 5229.5), "0.0869×")

    def test_whole_from_100(self):
        self.assertEqual(ratio(3164, 2.1), "1507×")
        self.assertEqual(ratio(100, 1), "100×")
        self.assertEqual(ratio(99.94, 1), "99.9×")

    def test_undefined(self):
        self.assertEqual(ratio(None, 1), DASH)
        self.assertEqual(ratio(1, None), DASH)
        self.assertEqual(ratio(1, 0), DASH)


class Sizes(unittest.TestCase):
    def test_mib(self):
        self.assertEqual(mib(55749374), "53.2 MiB (55749374 bytes)")
        self.assertEqual(mib(None), "")

    def test_total_and_fit(self):
        self.assertEqual(total([226.8, 226.7, 226.8]), "680.3")
        self.assertEqual(fit(23555, [226.8, 226.7, 226.8]), "~103")  # 103.86: truncated
        self.assertEqual(fit(23555, []), DASH)
        self.assertEqual(fit(23555, [0.0]), DASH)

    def test_rounded_and_kept(self):
        self.assertEqual(rounded(4.35649, 3), 4.356)
        self.assertEqual(rounded(264.94, 1), 264.9)
        self.assertEqual(kept([5, 0], 5), "5/5, 0/5")
        self.assertEqual(kept([], 5), "")


if __name__ == "__main__":
    unittest.main()
