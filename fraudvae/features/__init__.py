"""Behavioural features, declared once in a spec and computed point-in-time.

``spec`` (what to compute), ``columns`` (reading the spec's columns), ``stream`` (the computation,
whole-file or chunk by chunk), ``behaviour`` (a model's spec and the events it reads), ``suggest``
(a first spec from a file's shape). It builds on :mod:`fraudvae.data` only; no model code.

The public names are re-exported here: ``fraudvae.features.compute_features(frame, spec)``.
"""

from fraudvae.features.spec import FeatureSpec, load_spec, parse_spec
from fraudvae.features.stream import FeatureStream, compute_features

__all__ = ["FeatureSpec", "FeatureStream", "compute_features", "load_spec", "parse_spec"]
