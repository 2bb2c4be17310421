"""`tftool-search`: the most accurate model that fits a latency, size, flash and RAM budget.

space.py   what a trial may choose (builder, width/stages/alpha, input size, variant)
hardware.py  the figures that do not depend on training (file size, LiteRT p50, TFLM flash
           and tensor arena), measured on the untrained candidate before any training
trial.py   one trial: the stage runner, export and the benchmark's timing in
           WORKDIR/search/trial_<n>/
study.py   the Optuna multi-objective study: storage, stale trials, budgets as constraints,
           search.md, pareto.png, best.flags
"""
