"""The evaluation's arithmetic: medians with their spread, ratios, sizes.

Pure functions over lists of floats; the formats are those of docs/guides/benchmarks.md.
"""

import statistics

DASH = "–"  # an empty or undefined cell


def median(values):
    """The median of the values, or None if there are none."""
    return statistics.median(values) if values else None


def cell(values, digits=2):
    """"median (min–max)" of the values with DIGITS decimals; the median alone if all are equal."""
    if not values:
        return DASH
    f = "{:.%df}" % digits
    med, lo, hi = (f.format(x) for x in (statistics.median(values), min(values), max(values)))
    return f"{med} ({lo}–{hi})" if lo != hi else med  # no "0.49 (0.49–0.49)"


def ratio(a, b):
    """a / b as "1.85×" (three significant digits; whole numbers from 100 on), "–" if undefined."""
    if a is None or b is None or b == 0:
        return DASH
    r = a / b
    # "%g" keeps small ratios readable (0.0869×) without printing 1507.23× for large ones.
    return "%.0f×" % r if r >= 100 else "%.3g×" % r


def mib(size):
    """A size in bytes as "2.4 MiB (2505930 bytes)"; "" if unknown."""
    if size is None:
        return ""
    return "%.1f MiB (%d bytes)" % (size / 1048576, size)


def total(values):
    """The sum with one decimal, as in the density table."""
    return "%.1f" % sum(values)


def fit(available_mib, values):
    """How many instances of median size fit in AVAILABLE_MIB: "~103", "–" if undefined."""
    m = median(values)
    if available_mib is None or m is None or m <= 0:
        return DASH
    return "~%d" % (available_mib / m)  # truncated: an estimate never rounds up


def rounded(x, digits):
    """X as recorded: rounded to DIGITS decimals, as the figures are printed when taken."""
    return float("%.*f" % (digits, x))


def kept(counts, n):
    """"3/5, 5/5": how many instance ids each change kept, out of N."""
    return ", ".join("%d/%s" % (k, n) for k in counts)
