#!/usr/bin/env bash
# One tftool-search study shared by several machines through a PostgreSQL database (Optuna's
# RDB storage; the journal file, the default, is for processes on one machine, and Optuna's
# docs advise against SQLite for parallel runs).
#
#   once, on the database host:  createdb tftool_search   (a PostgreSQL server the hosts reach)
#   on every machine:            recipes/search_multi_machine.sh postgresql://USER:PASS@DBHOST/tftool_search
#
# Every machine runs the same command; each asks the study for its next trial, so N machines
# run about N trials at a time and --trials counts the study's finished trials, not one
# machine's. Each trial trains, exports and times on the machine that runs it: give every
# machine the same CPU when the budget is a latency (--max_latency_ms is p50 on that CPU).
# A machine that dies leaves its running trial to Optuna's heartbeat (failed after a minute without a heartbeat,
# asked again once); the others go on. The data settings come from WORKDIR/float, so every
# machine first trains (or copies) the same float model with the same data flags.
# Expected (digits, the budget below): ~20 trials spread over the machines, search.md and
# pareto.png in WORKDIR/search on each; `make search-dashboard STORAGE=<url>` shows the study.
set -euo pipefail
cd "$(dirname "$0")/.."

URL=${1:?usage: $0 postgresql://USER:PASS@HOST/DB [extra tftool-search flags]}
shift
WORKDIR=${WORKDIR:-workdir}
make install
.venv/bin/python -m pip install -q "psycopg2-binary>=2.9"   # SQLAlchemy's PostgreSQL driver
make train WORKDIR="$WORKDIR"   # skipped when complete
.venv/bin/tftool-search --workdir="$WORKDIR" --storage="$URL" --study_name=tftool \
    --max_latency_ms="${MAX_LATENCY_MS:-0.05}" --trials="${TRIALS:-20}" "$@"
