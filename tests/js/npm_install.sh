#!/usr/bin/env bash
# Installs the npm project tests/js/<name>/ (package.json + package-lock.json) into a cache folder
# outside the checkout and prints that folder (its node_modules/ holds the packages).
#   tests/js/npm_install.sh <name>
# Cache: $KANDIL_NPM_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/kandil/npm. A finished install is
# reused while package.json and package-lock.json are unchanged.
# Exit 77 (CTest's SKIP_RETURN_CODE) with a message on stderr where node/npm are missing or the
# registry cannot be reached, so tests that need the reference implementations skip visibly.
set -euo pipefail
name=${1:?usage: npm_install.sh <name>}
src="$(cd "$(dirname "$0")" && pwd)/$name"
[[ -f "$src/package.json" ]] || { echo "npm_install.sh: no $src/package.json" >&2; exit 2; }
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "SKIP: node/npm not installed; the reference-implementation tests need them" >&2
  exit 77
fi
cache="${KANDIL_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kandil/npm}/$name"
stamp=$(for f in package.json package-lock.json .npmrc; do
  if [[ -f "$src/$f" ]]; then cat "$src/$f"; fi
done | sha256sum | cut -c1-16)
if [[ -f "$cache/.stamp" && "$(cat "$cache/.stamp")" == "$stamp" && -d "$cache/node_modules" ]]; then
  echo "$cache"
  exit 0
fi
mkdir -p "$cache"
# Several tests may ask at once: one installs, the others wait for it.
exec 9>"$cache.lock"
flock 9
if [[ -f "$cache/.stamp" && "$(cat "$cache/.stamp")" == "$stamp" && -d "$cache/node_modules" ]]; then
  echo "$cache"
  exit 0
fi
cp "$src/package.json" "$cache/"
[[ -f "$src/package-lock.json" ]] && cp "$src/package-lock.json" "$cache/"
# An .npmrc (e.g. ignore-scripts=true, where a dependency's install script needs other hosts).
[[ -f "$src/.npmrc" ]] && cp "$src/.npmrc" "$cache/"
cmd=install
[[ -f "$cache/package-lock.json" ]] && cmd=ci
if ! (cd "$cache" && timeout 600 npm "$cmd" --no-audit --no-fund --loglevel=error >"$cache/npm.log" 2>&1); then
  echo "SKIP: npm $cmd for tests/js/$name failed (registry unreachable?); see $cache/npm.log:" >&2
  tail -n 5 "$cache/npm.log" >&2
  exit 77
fi
echo "$stamp" >"$cache/.stamp"
echo "$cache"
