#!/usr/bin/env bash
# Validates the Prometheus configuration, the alert rules and their unit tests with promtool, and
# the Alertmanager configuration and its routing with amtool.
set -euo pipefail
cd "$(dirname "$0")"

missing() {
    if [ "${CI:-}" = "true" ]; then
        echo "$1 is missing (apt-get install $2)" >&2
        exit 1
    fi
    echo "SKIPPED: $1 not found; install Debian's $2 package to check $3" >&2
}

if command -v promtool >/dev/null 2>&1; then
    (
        cd prometheus
        promtool check config prometheus.yml
        promtool check rules alerts.yml
        promtool test rules alerts_test.yml
    )
else
    missing promtool prometheus "the rules"
fi

if command -v amtool >/dev/null 2>&1; then
    amtool check-config alertmanager/alertmanager.yml
    # Where each severity goes: warnings to Slack, critical alerts to Slack and email.
    expect_route() {
        local expected=$1
        shift
        local got
        got=$(amtool config routes test --config.file=alertmanager/alertmanager.yml "$@" 2>/dev/null)
        if [ "$got" != "$expected" ]; then
            echo "routing $*: expected receiver '$expected', got '$got'" >&2
            exit 1
        fi
        echo "route $*: $got"
    }
    expect_route slack alertname=StockxSyncJobFailureRateHigh severity=warning
    expect_route slack alertname=StockxSyncQueueStuck severity=warning
    expect_route slack-and-email alertname=StockxSalesPendingOver24h severity=critical
    expect_route slack-and-email alertname=StockxApiFailing severity=critical
    expect_route slack-and-email alertname=StockxSyncWorkerDown severity=critical
else
    missing amtool prometheus-alertmanager "the Alertmanager configuration"
fi
