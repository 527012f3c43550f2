#!/usr/bin/env bash
# `make test-integration`: the provider in a real Airflow deployment.
#
#   1. installs what the machine lacks (Debian: the PostgreSQL server and Chromium; needs root or sudo);
#   2. keeps the tier's tools (build, pytest, playwright) in .venv-integration/tools;
#   3. runs integration/ with pytest: it builds the sdist and wheel, installs the wheel into a FRESH
#      venv (.venv-integration/airflow), starts PostgreSQL, the simulator, api-server, scheduler,
#      dag-processor and triggerer on 127.0.0.1, and drives everything through the REST API;
#   4. checks that no process of the run is left (each carries CONFLUENCE_INTEGRATION_RUN=<id> in its
#      environment) and kills any that is, also on failure, Ctrl-C and SIGTERM.
#
# Extra arguments go to pytest, e.g. `bash integration/run.sh -k batch -x`.
# Logs and the screenshot of the last run: .venv-integration/last-run/.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${INTEGRATION_STATE:-$ROOT/.venv-integration}"
PYTHON="${PYTHON:-python3}"
TOOLS="$STATE/tools"
TOOL_REQUIREMENTS=("build>=1.2" "pytest>=8,<10" "playwright>=1.45,<2")
CHROMIUM="${INTEGRATION_CHROMIUM:-/usr/bin/chromium}"
RUN_ID="$(date +%s)$$"
MARKER="CONFLUENCE_INTEGRATION_RUN=$RUN_ID"
STARTED=$SECONDS

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\n\033[31mINTEGRATION TIER: %s\033[0m\n' "$*" >&2; exit 1; }

# Processes of this run that are still there: pid and command line.
leftovers() {
    local environ pid
    for environ in /proc/[0-9]*/environ; do
        pid="${environ#/proc/}"; pid="${pid%/environ}"
        [[ "$pid" == "$$" ]] && continue
        if { tr '\0' '\n' < "$environ"; } 2>/dev/null | grep -qxF "$MARKER"; then
            printf '%s %s\n' "$pid" "$({ tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | cut -c1-160)"
        fi
    done
}

finish() {
    local status=$? left
    trap - EXIT INT TERM
    left="$(leftovers)"
    if [[ -n "$left" ]]; then
        printf '\n\033[31mProcesses of this run were still running; killing them:\033[0m\n%s\n' "$left" >&2
        awk '{print $1}' <<< "$left" | xargs -r kill -KILL 2>/dev/null || true
        [[ $status -eq 0 ]] && status=1
    else
        echo "No process of this run is left (checked by its marker in /proc/*/environ)."
    fi
    echo "Integration tier: $((SECONDS - STARTED)) s in all, exit status $status."
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. system packages ---------------------------------------------------------------------------
need=()
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    need+=(postgresql)
fi
[[ -x "$CHROMIUM" ]] || need+=(chromium)
if ((${#need[@]})); then
    say "Installing Debian packages: ${need[*]}"
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "not root and no sudo: install ${need[*]} (Debian packages) first"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi

# 2. the tier's tools --------------------------------------------------------------------------
if [[ ! -x "$TOOLS/bin/pytest" || "$(cat "$TOOLS/.requirements" 2>/dev/null)" != "${TOOL_REQUIREMENTS[*]}" ]]; then
    say "Creating the tier's tool venv ($TOOLS): ${TOOL_REQUIREMENTS[*]}"
    rm -rf "$TOOLS"
    "$PYTHON" -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install --quiet --upgrade pip
    "$TOOLS/bin/python" -m pip install --quiet "${TOOL_REQUIREMENTS[@]}"
    echo "${TOOL_REQUIREMENTS[*]}" > "$TOOLS/.requirements"
fi

# 3. the tests ---------------------------------------------------------------------------------
say "Integration tests (run $RUN_ID): build, fresh venv, PostgreSQL, simulator, Airflow components"
export INTEGRATION_STATE="$STATE"
INTEGRATION_PYTHON="$(command -v "$PYTHON")"
export INTEGRATION_PYTHON
export INTEGRATION_RUN_ID="$RUN_ID"
export INTEGRATION_CHROMIUM="$CHROMIUM"
cd "$ROOT/integration"
"$TOOLS/bin/pytest" -c "$ROOT/integration/pytest.ini" "$@"  # no path: collects integration/
