"""The demo cohort: realistic multi-site BIDS datasets built from real brain images that
ship inside installed packages, and the ``rollerblade demo`` walk-through.

``sources`` finds the real images, ``cohort`` writes datasets (also used by the tests
and the benchmarks), ``run`` imports, queries and downloads them.
"""
