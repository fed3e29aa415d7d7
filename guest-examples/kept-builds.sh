# Sourced by the Python and JavaScript builds (needs $repo and $tools).
#
# componentize-py and componentize-js give different bytes for the same
# inputs on every build (componentize-py issue #247), and a node whose bytes
# change has a new sha256: node-host compiles it again wherever it is loaded,
# a minute or two for these guests. So each build is kept under a key of its
# inputs, and a later build of the same inputs (a fresh clone, CI) reuses it.

# Prints a key for the toolchain `$1` and the files under the paths that
# follow (relative to the repository).
inputs_key() {
  local toolchain="$1"
  shift
  {
    echo "$toolchain"
    (cd "$repo" && find "$@" -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-16
}

# Copies the kept build `$1` of these inputs to `$2`; fails if there is none.
reuse_kept() {
  [[ -f "$tools/kept/$1" ]] && cp "$tools/kept/$1" "$2"
}

# Keeps `$2` as the build `$1`.
keep_build() {
  mkdir -p "$tools/kept"
  cp "$2" "$tools/kept/$1.tmp"
  mv "$tools/kept/$1.tmp" "$tools/kept/$1"
}
