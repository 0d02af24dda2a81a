#!/usr/bin/env bash
# Validate the churn-alert Prometheus rules: syntax, then the promtool unit tests.
# Exits 0 only if both pass. Needs promtool (Debian: apt-get install prometheus).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
promtool check rules churn-alert.rules.yml
promtool test rules churn-alert.rules.test.yml
