#!/bin/bash
# The README's quality tables: the shipped models at budgets 2, 4 and 8 on the logo validation split
# and on the Fluent icons, one `vtopt evaluate` run per budget (and one for TPE-40), reports in OUT.
#   LOGOS=~/.cache/vtopt/corpus-validation/logos FLUENT=../shared/data/fluent-emoji benchmarks/quality_tables.sh OUT
set -euo pipefail
OUT=${1:?usage: LOGOS=DIR FLUENT=DIR $0 OUT}
mkdir -p "$OUT"
for set in logos fluent; do
  if [ $set = logos ]; then DIR=${LOGOS:?}; else DIR=${FLUENT:?}; fi
  run() {  # budget, methods, tpe budget, file suffix
    vtopt -q evaluate "$DIR" --budget "$1" --methods "$2" --tpe-budget "$3" \
      --report "$OUT/$set-b$1$4.json" --force > "$OUT/$set-b$1$4.txt"
  }
  run 4 chooser,ppo,portfolio,defaults,polygon,tpe,oracle 16 ""
  run 8 chooser,ppo,portfolio,defaults,tpe 16 ""
  run 2 chooser,ppo,portfolio,defaults,polygon 16 ""
  run 8 tpe 40 -tpe40
done
