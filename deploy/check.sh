#!/usr/bin/env bash
# Validates the Prometheus configuration, the alert rules and their unit tests with promtool.
set -euo pipefail
cd "$(dirname "$0")/prometheus"
if ! command -v promtool >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ]; then
        echo "promtool is missing (apt-get install prometheus)" >&2
        exit 1
    fi
    echo "SKIPPED: promtool not found; install Debian's prometheus package to check the rules" >&2
    exit 0
fi
promtool check config prometheus.yml
promtool check rules alerts.yml
promtool test rules alerts_test.yml
