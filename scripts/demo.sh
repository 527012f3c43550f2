#!/usr/bin/env bash
# `make demo`: the example DAGs, run by a real `airflow dags test`, against the built-in Confluence
# simulator. Everything lives in a temporary folder that is removed at the end; nothing keeps running.
set -euo pipefail

BIN="${1:-.venv/bin}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/confluence-demo.XXXXXX")"
SIM_PID=""

cleanup() {
    if [[ -n "$SIM_PID" ]] && kill -0 "$SIM_PID" 2>/dev/null; then
        kill -TERM "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\n\033[31mDEMO FAILED: %s\033[0m\n' "$*" >&2; exit 1; }

export AIRFLOW_HOME="$WORK/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/example_dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__LOGGING__LOGGING_LEVEL=INFO
export CONFLUENCE_EXAMPLE_POLL_SECONDS=2
mkdir -p "$AIRFLOW_HOME"

say "Starting the Confluence simulator (scenario 'demo') on 127.0.0.1"
"$BIN/python" -m airflow_provider_confluence.testing --port 0 --port-file "$WORK/port" --scenario demo \
    > "$WORK/simulator.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 1 100); do
    [[ -s "$WORK/port" ]] && break
    kill -0 "$SIM_PID" 2>/dev/null || { cat "$WORK/simulator.log"; die "the simulator did not start"; }
    sleep 0.1
done
[[ -s "$WORK/port" ]] || die "the simulator did not report its port within 10 s"
PORT="$(cat "$WORK/port")"
echo "Simulator at http://127.0.0.1:$PORT/wiki (tasks 880001: space export, 880002: space deletion that fails)"

# The connection, as a user would give it in the environment (JSON form).
export AIRFLOW_CONN_CONFLUENCE_DEFAULT="{\"conn_type\": \"confluence\", \"host\": \"http://127.0.0.1:$PORT/wiki\",
 \"login\": \"demo@example.com\", \"password\": \"sim-token\", \"extra\": {\"deployment\": \"cloud\"}}"

say "Initialising a temporary Airflow metadata database"
"$BIN/airflow" db migrate > "$WORK/db.log" 2>&1 || { tail -20 "$WORK/db.log"; die "airflow db migrate failed"; }

# run_dag NAME DAG_ID CONF EXPECTED(success|failed)
run_dag() {
    local name="$1" dag_id="$2" conf="$3" expected="$4" log="$WORK/$1.log" rc=0
    say "airflow dags test $dag_id --conf '$conf'   (expected: $expected)"
    "$BIN/airflow" dags test "$dag_id" --conf "$conf" > "$log" 2>&1 || rc=$?
    # What the user would look for in the task log: deferral, progress, outcome, error keys.
    grep -E "Deferring|Confluence task [^ ]+ \(|LongTaskFailed|Backup copied|finished successfully|succeeded with warnings" "$log" \
        | sed -E 's/^[0-9T:.Z-]+ \[[a-z ]+\] //; s/ \[airflow[^]]*\].*$//' | sed -E 's/^/    /' | awk '!seen[$0]++' || true
    local state
    state="$(grep -oE "DagRun Finished: .*state=[a-z_]+" "$log" | tail -1 | grep -oE "state=[a-z_]+" | cut -d= -f2 || true)"
    [[ -n "$state" ]] || state="$( [[ $rc -eq 0 ]] && echo success || echo failed )"
    echo "$name|$dag_id|$expected|$state" >> "$WORK/results"
    if [[ "$state" != "$expected" ]]; then
        tail -40 "$log"
        die "$dag_id ended '$state', expected '$expected'"
    fi
}

run_dag export  example_confluence_wait_for_long_task '{"long_task_id": "880001"}' success
run_dag delete  example_confluence_wait_for_long_task '{"long_task_id": "880002"}' failed
run_dag backup  example_confluence_nightly_backup    '{"source_page_id": "65601", "archive_parent_id": "98305"}' success
run_dag cleanup example_confluence_archive_old_pages '{"page_ids": ["65601", "65602", "65603"]}' success

say "Summary"
keys="$(grep -oE "with error keys [A-Z_, ]+[A-Z_]" "$WORK/delete.log" | head -1 | sed 's/with error keys //')"
dest="$(grep -oE "Backup copied .*" "$WORK/backup.log" | head -1 | sed -E 's/ \[airflow.*$//')"
printf '  %-34s %s\n' \
    "space export (task 880001):" "succeeded, waited in the triggerer; XCom has its download URL" \
    "space deletion (task 880002):" "FAILED as expected, Confluence error keys: ${keys:-?}" \
    "nightly backup (page-tree copy):" "succeeded: ${dest:-?}" \
    "clean-up (archive 3 pages):" "succeeded: started one archive job and waited for it"
requests="$("$BIN/python" -c 'import json, sys, urllib.request
print(json.load(urllib.request.urlopen(sys.argv[1], timeout=5))["total_requests"])' \
    "http://127.0.0.1:$PORT/_simulator/stats" 2>/dev/null || echo "?")"
echo "  The simulator answered $requests Confluence API requests. All outcomes as expected."
