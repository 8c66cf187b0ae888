#!/bin/sh
# Rewrites the citations of documents that are not in the repository (MediaMTX
# notes, their addenda, the peers survey, the product brief and the original
# design, "the seed") into citations of docs/mediamtx.md and docs/design.md.
# docs/CITATIONS.md lists every form and its replacement.
#
# Usage: docs/rewrite-citations.sh [REPO_ROOT]   (default: the current directory)
# It edits files in place and prints what still looks like such a citation
# (nothing, when it worked). Run it once, after merging; it is idempotent.
set -eu

root=${1:-.}
cd "$root"

rules=$(mktemp)
trap 'rm -f "$rules"' EXIT

# Basic regular expressions, `|` as the delimiter, most specific rules first.
cat >"$rules" <<'EOF'
# ---- MediaMTX notes, addenda, peers, product brief ----
s|`\.\./shared/reference/mediamtx/NOTES\.md` describes|`../docs/mediamtx.md` describes|g
s|`shared/reference/mediamtx/NOTES\.md` describes|`docs/mediamtx.md` describes|g
s|The tests read MediaMTX's reference files from$|The MediaMTX facts the tests use are fixtures in the repository|
s|^`\.\./shared/reference/mediamtx/` beside the repository\.$|(`tests/fixtures/README.md`); nothing beside the checkout is read.|
s|NOTES\.md / ADDENDA\.md item 4|docs/mediamtx.md §l.4|g
s|ADDENDA\.md and NOTES\.md say$|docs/mediamtx.md §l says|
s|ADDENDA\.md item \([0-9]\)|docs/mediamtx.md §l.\1|g
s|ADDENDA\.md \([0-9]\)|docs/mediamtx.md §l.\1|g
s|NOTES\.md §k, peers\.md §2|docs/mediamtx.md §k|g
s|NOTES\.md §0 item \([0-9][0-9]*\)|docs/mediamtx.md §0.\1|g
s|NOTES\.md §0 "Surprises first"|docs/mediamtx.md §0 "Surprises first"|g
s|NOTES\.md §|docs/mediamtx.md §|g
s|NOTES §|docs/mediamtx.md §|g
s|PRODUCT\.md's fixed interface|the fixed interface of docs/design.md §0.3|g
# ---- the original design ("the seed"): identifiers ----
s|\bseed_health_example\b|design_health_example|g
s|\bseed_event\b|example_event|g
s|\bSEED_TEXT\b|EXAMPLE_TELEGRAM_TEXT|g
s|_the_seeds_|_the_designs_|g
s|_the_seeds\b|_the_designs|g
s|\bthe_seeds_|the_designs_|g
# ---- the original design: phrases with a section ----
s|The seed's health document|The health document of docs/design.md §6.1|g
s|the seed's health document|the health document of docs/design.md §6.1|g
s|the seed's health$|the health document of docs/design.md §6.1,|
s|^//! document, errors, access rules|//! errors, access rules|
s|the seed's ladder|the recovery ladder of docs/design.md §4|g
s|the seed's recovery ladder|the recovery ladder of docs/design.md §4|g
s|the recovery ladder (the seed's$|the recovery ladder (docs/design.md §3, §4:|
s|the seed's default timings|the default timings of docs/design.md §3-§4|g
s|the seed's defaults|the defaults of docs/design.md|g
s|seed's defaults\. Every error|defaults of docs/design.md. Every error|g
s|The seed's full check of every camera|The full check of every camera (docs/design.md §3)|g
s|The seed's outer bound|The outer bound of docs/design.md §3.2|g
s|(the seed's$|(docs/design.md §3.2:|
s|The seed's 2-minute rule|The 2-minute rule of docs/design.md §3.2|g
s|The seed: Warning on the first failure|docs/design.md §5.1: Warning on the first failure|g
s|(the seed's public STUN)|(the public STUN server of docs/design.md §1.2)|g
s|(the seed allows any)|(docs/design.md §1.2 allows any)|g
s|(the seed's standard HLS, 4-6 s latency)|(the standard HLS of docs/design.md §1.2, 4-6 s latency)|g
s|The seed's YAML is invalid|The original design's YAML (docs/design.md §1.2) is invalid|g
s|keeps the seed's intent|keeps the design's intent|g
s|the seed's "Sistema de Alertas"|docs/design.md §5, "Sistema de Alertas"|g
s|the seed's Telegram text|the Telegram text of docs/design.md §5.3|g
s|the seed's Telegram message|the Telegram message of docs/design.md §5.3|g
s|(the seed's five lines)|(the five lines of docs/design.md §5.3)|g
s|the seed's five lines|the five lines of docs/design.md §5.3|g
s|(the seed's severity table)|(docs/design.md §5.1)|g
s|(the seed's table: |(docs/design.md §5.1: |g
s|The seed's routing plus dedup|The routing of docs/design.md §5.1 plus dedup|g
s|The seed's severity levels|The severity levels of docs/design.md §5.1|g
s|The seed's level names|The level names of docs/design.md §5.1|g
s|(the seed's "Gravação parou")|("Gravação parou", docs/design.md §4.2)|g
s|The seed's structured log record|The structured log record (docs/design.md §5.5)|g
s|the seed's structured log line|the structured log line of docs/design.md §5.5|g
s|the seed's exact JSON object|the exact JSON object of docs/design.md §5.5|g
s|The alert line is the seed's example|The alert line is the example of docs/design.md §5.5|g
s|^\(\s*//[/!]\) seed's fields: |\1 fields of docs/design.md §5.5: |
s|^\(\s*//[/!]\) seed's `level`|\1 `level` of docs/design.md §5.5|
s|^\(\s*//[/!]\) seed's fields as fields|\1 fields of docs/design.md §5.5 as fields|
s|^\(\s*//[/!]\) seed's level name|\1 level name of docs/design.md §5.5|
s|with the seed's fields as journal fields|with the alert fields of docs/design.md §5.5 as journal fields|g
s|(the seed's `recent_alerts\[\]\.camera`)|(`recent_alerts[].camera` of docs/design.md §6.1)|g
s|The seed's dashboard text|The dashboard text of docs/design.md §5.2|g
s|What the seed's text has no line for|What the text of docs/design.md §5.2 has no line for|g
s|prints the seed's dashboard|prints the dashboard text of docs/design.md §5.2|g
s|The seed's example: camera 5|The example of docs/design.md §5.3: camera 5|g
s|The seed's example health document|The example health document of docs/design.md §6.1|g
s|the seed's series with its names and labels|the series of docs/design.md §7.1 with their names and labels|g
s|an operator needs that the seed forgot|an operator needs that the original design forgot|g
s|shows it in the seed's$|shows it in the|
s|the seed's names and bare histograms|the original design's names (docs/design.md §7.2) and bare histograms|g
s|the seed's jobs, without Django and Celery|the jobs of docs/design.md §7.3, without Django and Celery|g
s|The seed's values, kept|The values of docs/design.md §7.4, kept|g
s|The seed's group_wait (10 s)|The group_wait of docs/design.md §7.5 (10 s)|g
s|The seed's routing: one notification|The routing of docs/design.md §7.5: one notification|g
s|The seed's `mediamtx_\*` names|The original design's `mediamtx_*` names (docs/design.md §7.2)|g
s|The seed's rule\.|The rule of docs/design.md §7.4.|g
s|The seed's rule,|The rule of docs/design.md §7.4,|g
s|^\(\s*//[/!]\) seed's CameraOffline rule|\1 CameraOffline rule of docs/design.md §7.4|
s|What the seed's 30 s poll|What the 30 s poll of docs/design.md §3|g
s|The seed used rate(|The original rule (docs/design.md §7.4) used rate(|g
s|The seed's "NoActiveSessions"|The "NoActiveSessions" rule of docs/design.md §7.4|g
s|The seed's `backend:8000`,|The original targets (docs/design.md §7.3) `backend:8000`,|g
s|the seed's 60 s segments|the 60 s segments of docs/design.md §1.1|g
# ---- the original design: whatever is left ----
s|The seed's|The design's|g
s|the seed's|the design's|g
s|The seed\b|The design|g
s|the seed\b|the design|g
EOF

# tests/it/api.rs compares our health document with "seed": a local name.
files=$(git ls-files -- src sim tests scripts packaging monitoring etc systemd .ci \
  README.md sim/README.md openapi.yaml build.rs | grep -v '^docs/' |
  grep -vE '\.(mp4|db|png|jpg|gz)$')
# shellcheck disable=SC2086
sed -i -f "$rules" $files
if [ -f tests/it/api.rs ]; then
  sed -i -e 's/\bseed\b/design/g' tests/it/api.rs
fi

# Longer identifiers can push a line past rustfmt's width.
if command -v cargo >/dev/null 2>&1; then
  cargo fmt --all
fi

# What remains (expected: nothing). Schemathesis' random seed and the
# maintainer address are not citations.
# shellcheck disable=SC2086
grep -nE "NOTES(\.md)?|ADDENDA|peers\.md|PRODUCT\.md|shared/|[Ss][Ee][Ee][Dd]" $files |
  grep -vE "API_CONTRACT_SEED|schemathesis seed|--seed|\\\$seed|seed=|r-seed-" || true
