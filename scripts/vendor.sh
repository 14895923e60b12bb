#!/usr/bin/env bash
# Vendor the chat page's browser libraries from the npm registry.
#
# Each library is fetched with `npm pack NAME@VERSION` (pinned here, verified
# by npm against the registry's integrity hash), and the browser ES-module
# build is copied to static/vendor/ with the version in the file
# name, beside its licence. static/vendor/MANIFEST.txt records what came from
# where, with sha256 sums, so a reviewer can re-run this and diff.
#
# To upgrade: change a version below, run `scripts/vendor.sh`, update the
# import paths in static/chat/*.js and templates/base.html, delete the old files.
set -euo pipefail

MARKED=18.2.1
DOMPURIFY=3.5.0
HLJS=11.12.0
KATEX=0.19.1
AXE=4.14.1

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$dest"

# unpack NAME VERSION -> prints the directory holding the unpacked package
unpack() {
    local name="$1" version="$2" tarball dir
    tarball="$(cd "$work" && npm pack --silent "$name@$version" | tail -n 1)"
    dir="$work/$(basename "$tarball" .tgz)"
    mkdir -p "$dir"
    tar -xzf "$work/$tarball" -C "$dir"
    echo "$dir/package"
}

manifest="$dest/MANIFEST.txt"
{
    echo "# Vendored browser libraries, written by scripts/vendor.sh; do not edit by hand."
    echo "# name version file sha256 license"
} >"$manifest"

# vendor NAME VERSION LICENSE SRC DEST: copy one file and record it. The only
# change made: a script's sourceMappingURL comment is dropped, since the maps
# aren't shipped and collectstatic's manifest storage fails on the missing file.
vendor() {
    local name="$1" version="$2" license="$3" src="$4" out="$5"
    case "$out" in
        *.js | *.mjs) grep -v '^//# sourceMappingURL=' "$src" >"$dest/$out" ;;
        *) cp "$src" "$dest/$out" ;;
    esac
    printf '%s %s %s %s %s\n' "$name" "$version" "$out" \
        "$(sha256sum "$dest/$out" | cut -d' ' -f1)" "$license" >>"$manifest"
}

pkg="$(unpack marked "$MARKED")"
vendor marked "$MARKED" MIT "$pkg/lib/marked.esm.js" "marked-$MARKED.esm.js"
vendor marked "$MARKED" MIT "$pkg/LICENSE" "marked-$MARKED.LICENSE.txt"

pkg="$(unpack dompurify "$DOMPURIFY")"
lic="(MPL-2.0 OR Apache-2.0)"
vendor dompurify "$DOMPURIFY" "$lic" "$pkg/dist/purify.es.mjs" "dompurify-$DOMPURIFY.es.js"
vendor dompurify "$DOMPURIFY" "$lic" "$pkg/LICENSE" "dompurify-$DOMPURIFY.LICENSE.txt"
vendor dompurify "$DOMPURIFY" "$lic" "$pkg/LICENSE-MPL" "dompurify-$DOMPURIFY.LICENSE-MPL.txt"

# The CDN-assets build's ES module bundles highlight.js with its common languages.
# Its token colours live in static/chat/style.css, so they follow the theme.
pkg="$(unpack @highlightjs/cdn-assets "$HLJS")"
vendor @highlightjs/cdn-assets "$HLJS" BSD-3-Clause "$pkg/es/highlight.min.js" "highlight-$HLJS.min.js"
vendor @highlightjs/cdn-assets "$HLJS" BSD-3-Clause "$pkg/LICENSE" "highlight-$HLJS.LICENSE.txt"

# KaTeX renders math; chat/markdown.js imports it only when a reply has math.
# Its stylesheet is trimmed to the woff2 fonts (every browser we serve reads
# them), so only those are shipped.
pkg="$(unpack katex "$KATEX")"
mkdir -p "$dest/katex-$KATEX/fonts"
sed -E 's/,url\(fonts\/[A-Za-z0-9_-]+\.(woff|ttf)\) format\("(woff|truetype)"\)//g' \
    "$pkg/dist/katex.min.css" >"$work/katex.min.css"
vendor katex "$KATEX" MIT "$work/katex.min.css" "katex-$KATEX/katex.min.css"
vendor katex "$KATEX" MIT "$pkg/dist/katex.mjs" "katex-$KATEX/katex.mjs"
vendor katex "$KATEX" MIT "$pkg/LICENSE" "katex-$KATEX/LICENSE.txt"
for font in "$pkg"/dist/fonts/*.woff2; do
    vendor katex "$KATEX" MIT "$font" "katex-$KATEX/fonts/$(basename "$font")"
done

# axe-core is for the accessibility tests only (tests/test_a11y.py injects it);
# no page links it.
pkg="$(unpack axe-core "$AXE")"
vendor axe-core "$AXE" MPL-2.0 "$pkg/axe.min.js" "axe-core-$AXE.min.js"
vendor axe-core "$AXE" MPL-2.0 "$pkg/LICENSE" "axe-core-$AXE.LICENSE.txt"

echo "Vendored into $dest:"
cat "$manifest"
