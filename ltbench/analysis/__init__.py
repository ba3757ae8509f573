"""Post-hoc analyses of finished runs (no retraining): shifted test priors, post-hoc logit adjustment,
calibration and confusion. Numpy only; `ltbench analyze` (ltbench.cli.analysis) drives them and
ltbench.analysis.report renders tables and figures. docs/analysis.md explains each with its source.
"""
