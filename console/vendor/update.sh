#!/usr/bin/env bash
# Refresh the vendored uPlot (the console's charts) from the npm registry.
#   console/vendor/update.sh            # the version in console/vendor/UPLOT_VERSION
#   console/vendor/update.sh 1.6.33     # another version; records it
# Needs npm (only to fetch the package tarball; nothing is built). The files land next to this
# script and are embedded into the binary at compile time, so building strangler needs no Node.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="${1:-$(cat "$here/UPLOT_VERSION")}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$version" >/dev/null)
tar -xzf "$work/uplot-$version.tgz" -C "$work"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$here/"
cp "$work/package/LICENSE" "$here/LICENSE-uPlot"
echo "$version" >"$here/UPLOT_VERSION"
echo "uPlot $version vendored into $here ($(wc -c <"$here/uPlot.iife.min.js") bytes of script)"
