"""What the CLI runs, callable from Python too: the batch job, Spark, train/evaluate workflows, the demo.

The top layer below :mod:`fraudvae.cli`: it composes the detector, the features and the report.
"""
