#!/usr/bin/env bash
# Renders docs/architecture.dot to docs/architecture.svg (Graphviz `dot`). The SVG carries the
# sha256 of its source, so a unit test can tell when the picture is older than the text.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dot >/dev/null || { echo "docs-diagram: needs Graphviz (apt-get install --no-install-recommends graphviz)" >&2; exit 1; }
sum=$(sha256sum docs/architecture.dot | cut -d' ' -f1)
dot -Tsvg docs/architecture.dot | sed "2i <!-- source: docs/architecture.dot sha256:$sum -->" > docs/architecture.svg
echo "docs/architecture.svg from docs/architecture.dot ($sum)"
