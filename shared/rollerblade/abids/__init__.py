"""aBIDS: the BIDS layout of the bucket, parsed with the official schema (bidsschematools).

Pure core: no storage, no index. ``paths`` classifies and parses one dataset path,
``sidecars`` applies the inheritance principle, ``tables`` reads participants/sessions
TSVs, ``nifti`` reads header facts from bytes, ``layout`` maps bucket keys to datasets.
"""
