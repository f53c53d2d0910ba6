#!/usr/bin/env bash
# A generated man page (cmake/NvgraceManPage.cmake) against its tool:
#   man_page_test.sh PAGE TOOL
# The page has NAME, SYNOPSIS, DESCRIPTION, EXIT STATUS and SEE ALSO, names the tool's version,
# documents every option the tool's --help lists, and (when groff is installed)
# formats without a warning.
set -uo pipefail
page=$1 tool=$2
name=$(basename "$tool")
failures=0
fail() { echo "FAIL: $page: $*" >&2; failures=$((failures + 1)); }

[[ -s $page ]] || { echo "FAIL: $page is missing or empty" >&2; exit 1; }
version=$("$tool" --version) || fail "$tool --version"
grep -q "^\.TH ${name^^} 1 \"\" \"nvgrace ${version#"$name "}\" \"User Commands\"$" "$page" || fail "no .TH line for $version"
for section in NAME SYNOPSIS DESCRIPTION '"EXIT STATUS"' '"SEE ALSO"'; do
  grep -q "^\.SH $section" "$page" || fail "no section $section"
done
grep -q "^\.B $name$" "$page" || fail "no synopsis line for $name"
for option in $("$tool" --help | grep -E '^  -' | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
  grep -qF -- "${option//-/\\-}" "$page" || fail "option $option is not documented"
done
for status in 0 1 2 3; do
  grep -qx "\.B $status" "$page" || fail "exit status $status is not documented"
done
if command -v groff >/dev/null; then
  warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
  [[ -z $warnings ]] || fail "groff warns: $warnings"
fi
((failures == 0)) || exit 1
echo "$page: ok"
