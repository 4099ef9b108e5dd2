"""Rows in, arrays out: parsing untrusted text, the input schema and its inference, encoding, file I/O.

The lowest layer above :mod:`fraudvae.exceptions`: it knows pandas and numpy, nothing of
the network, the features or the jobs.
"""
