"""The detector: scoring plans, the engine, calibration, fitting, saving, and the output contract.

``VAEDetector`` (:mod:`fraudvae.detection.detector`, exported as ``fraudvae.VAEDetector``) is the
thin scikit-learn facade over it. It builds on :mod:`fraudvae.model` and :mod:`fraudvae.data`.
"""
