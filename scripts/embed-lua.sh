#!/usr/bin/env bash
# Turn broker/bayeux.lua into a C file: the library text with its version
# (sha1 of the source) substituted for the line  local VERSION = 'dev'.
set -euo pipefail
src=$1; out=$2
ver=$(sha1sum "$src" | cut -c1-16)
{
  echo "/* Generated from $src by scripts/embed-lua.sh: do not edit. */"
  echo "const char bx_lua_version[] = \"$ver\";"
  echo "const char bx_lua_source[] ="
  sed -e "s/^local VERSION = 'dev'/local VERSION = '$ver'/" "$src" \
    | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$/\\n"/'
  echo ";"
} > "$out.tmp"
mv "$out.tmp" "$out"
