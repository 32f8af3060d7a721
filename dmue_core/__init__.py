"""DMUE (She et al., CVPR 2021) in pure PyTorch: multi-branch model, losses, trainer, export.

Must not import FiftyOne, pandas or click.
"""
