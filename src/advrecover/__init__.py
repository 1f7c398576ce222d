"""advrecover: self-supervised adversarial image recovery as a reproducible Snakemake/DVC pipeline."""

__version__ = "0.1.0"
