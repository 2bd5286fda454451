"""Hydra configuration groups of seqopt, installed as the package ``seqopt.conf``."""
