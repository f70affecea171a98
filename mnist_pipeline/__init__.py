"""Reproducible MNIST-family pipeline: check -> download -> verify -> extract -> decode -> export -> unpack, report.

Each stage is a module run as ``python -m mnist_pipeline.<stage>`` by ``dvc.yaml``; the library
functions it calls take explicit paths and values and can be used on their own.
"""
