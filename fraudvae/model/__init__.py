"""The model family: the ``nn.Module``, its losses, the training loop and schedule, the score
terms, the backends that fit and persist them, and torch's thread choice.

It reads encoded rows from :mod:`fraudvae.data`; it knows nothing of detectors, features or jobs.
"""
