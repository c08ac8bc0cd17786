#!/usr/bin/env bash
# Assembles the training corpus of kandil's own default model from permissively licensed text that
# Debian 12 ships (source code and documentation), and writes the manifest of every file used.
#
#   scripts/default_model/build_corpus.sh [OUT_DIR] [MANIFEST]
#     OUT_DIR   corpus folder (default build/default_model/corpus): one <package>.txt per package,
#               the package's files concatenated in manifest order, each preceded by a line
#               "<|file|> <path>"
#     MANIFEST  data/default_model/MANIFEST.tsv by default: path, package, version, licence, bytes,
#               sha256 (tab-separated, sorted by package then path)
#
# Only the packages in SOURCES below are used. For each, the script checks that it is installed and
# that its /usr/share/doc/<pkg>/copyright names the expected licence; a package that fails either
# check is skipped with a warning. Files are taken from `dpkg -L <pkg>` (so every file belongs to the
# package named in the manifest), and any file whose first 60 lines mention the GNU GPL/LGPL/AGPL is
# excluded. Python files under stdlib folders with their own (permissive) licences are recorded with
# that licence (see docs/default-model.md). GPL/LGPL packages are never listed.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out=${1:-$root/build/default_model/corpus}
manifest=${2:-$root/data/default_model/MANIFEST.tsv}
mkdir -p "$out" "$(dirname "$manifest")"

# package ; licence (SPDX) ; text the copyright file must contain ; include regex ; exclude regex
SOURCES=(
  "libpython3.11-minimal;PSF-2.0;Python Software Foundation;^/usr/lib/python3\.11/.*\.py$;/(test|tests|idle_test|site-packages|dist-packages)/"
  "libpython3.11-stdlib;PSF-2.0;Python Software Foundation;^/usr/lib/python3\.11/.*\.py$;/(test|tests|idle_test|site-packages|dist-packages)/"
  "cmake-data;BSD-3-Clause;BSD-3-clause;^/usr/share/cmake-3\.25/(Modules|Help)/.*\.(cmake|rst|txt)$;/Internal/CPack/"
  "nlohmann-json3-dev;MIT;Expat;^/usr/include/nlohmann/.*\.hpp$;^$"
  "libfmt-dev;MIT;Expat;^/usr/include/fmt/.*\.h$;^$"
  "libcli11-dev;BSD-3-Clause;BSD-3-clause;^/usr/include/CLI/.*\.hpp$;^$"
  "libcpp-httplib-dev;MIT;Expat;^/usr/include/httplib\.h$;^$"
  "libtomlplusplus-dev;MIT;Expat;^/usr/include/toml\+\+/.*\.(h|hpp|inl)$;^$"
  "libutf8proc-dev;MIT;Expat;^/usr/include/utf8proc\.h$;^$"
  "libssl-dev;Apache-2.0;Apache-2.0;^/usr/include/openssl/.*\.h$;^$"
  "llvm-14-dev;Apache-2.0 WITH LLVM-exception;APACHE-2-LLVM-EXCEPTIONS;^/usr/include/llvm-(c-)?14/.*\.h$;^$"
)

# Stdlib parts under their own permissive licences (libpython3.11-stdlib copyright, "Files with
# other licenses than the Python License").
python_licence() {
  case "$1" in
    */python3.11/logging/*) echo "HPND (Vinay Sajip)" ;;
    */python3.11/multiprocessing/*) echo "BSD-3-Clause" ;;
    */python3.11/sqlite3/*) echo "Zlib" ;;
    */python3.11/asyncore.py | */python3.11/asynchat.py) echo "HPND (Sam Rushing)" ;;
    */python3.11/tarfile.py) echo "MIT" ;;
    */python3.11/turtle.py) echo "Zlib" ;;
    *) echo "PSF-2.0" ;;
  esac
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
total=0
for entry in "${SOURCES[@]}"; do
  IFS=';' read -r pkg licence word include exclude <<<"$entry"
  version=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)
  if [[ -z "$version" ]]; then
    echo "warning: $pkg is not installed; skipped" >&2
    continue
  fi
  copyright="/usr/share/doc/$pkg/copyright"
  if [[ ! -f "$copyright" ]] || ! grep -q -- "$word" "$copyright"; then
    echo "warning: $copyright does not name '$word'; $pkg skipped" >&2
    continue
  fi
  corpus="$out/$pkg.txt"
  : >"$corpus"
  n=0
  while IFS= read -r f; do
    [[ -f "$f" && ! -L "$f" ]] || continue
    if head -n 60 "$f" | grep -Eqi 'GNU (Lesser |Library |Affero )?General Public License|\bL?GPL(v?[23])?\b'; then
      echo "note: $f mentions the GPL; excluded" >&2
      continue
    fi
    lic=$licence
    [[ "$pkg" == libpython3.11-* ]] && lic=$(python_licence "$f")
    bytes=$(stat -c %s "$f")
    sum=$(sha256sum "$f" | cut -d' ' -f1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$f" "$pkg" "$version" "$lic" "$bytes" "$sum" >>"$tmp"
    { printf '<|file|> %s\n' "$f"; cat "$f"; printf '\n'; } >>"$corpus"
    n=$((n + 1))
    total=$((total + bytes))
  done < <(dpkg -L "$pkg" | grep -E -- "$include" | grep -Ev -- "$exclude" | LC_ALL=C sort)
  echo "$pkg ($licence): $n files" >&2
done
{
  printf 'path\tpackage\tversion\tlicence\tbytes\tsha256\n'
  LC_ALL=C sort -t$'\t' -k2,2 -k1,1 "$tmp"
} >"$manifest"
echo "corpus: $out ($total bytes of source text); manifest: $manifest ($(($(wc -l <"$manifest") - 1)) files)" >&2
