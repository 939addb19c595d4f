#!/usr/bin/env bash
# Run `airflow dags test DAG DATE`, keep its verbose log in a file and print a short summary.
# Usage: scripts/dags-test.sh DAG_ID DATE
set -euo pipefail
dag_id=$1 date=$2
bin=${BIN:-.venv/bin}
log_dir=${AIRFLOW_HOME:-.airflow}/dags-test
mkdir -p "$log_dir"
log=$log_dir/$dag_id-$date.log
echo "==> airflow dags test $dag_id $date (log: $log)"
if ! "$bin/airflow" dags test "$dag_id" "$date" >"$log" 2>&1; then
  echo "FAILED: airflow dags test $dag_id $date; last lines of $log:" >&2
  tail -40 "$log" >&2
  exit 1
fi
if ! grep -q "state=success" "$log"; then
  echo "FAILED: $dag_id did not finish in state success; see $log" >&2
  grep -E "error|Error|failed" "$log" | tail -20 >&2
  exit 1
fi
grep -oE "Wrote [0-9]+ rows to [a-z_]+ \(partition [0-9-]+\)|Wrote [0-9]+ recommendations [^[]*|Registered candidate .*|Gate: [^[]*|Promoted [^[]*|rejected: [^[]*|Drift \| [^[]*|Outcomes [0-9-]+ \| [^[]*" "$log" \
  | sed -e 's/ *$//' -e 's/ \[airflow\..*$//' -e 's/^/    /' | awk '!seen[$0]++' \
  | awk '/Wrote .* to labels/ { n++; if (n > 3) next } { print } END { if (n > 3) print "    ... and " n - 3 " more label partitions" }'
echo "    $dag_id $date: success"
