#!/usr/bin/env bash
# What a user gets from `pip install spear_lab`, checked outside the checkout:
#
#   1. `python -m build`: the sdist, then the wheel built FROM the sdist; a second wheel
#      built straight from a copy of the tree must hold the same files (the sdist is
#      complete);
#   2. that wheel, with its `test` and `whisper` extras, into a fresh venv in a temp dir;
#   3. from another temp folder, with the installed `spear-lab` only: --version, guests,
#      sdk, demo, run realtime_asr on the installed demo speech, two user errors (one
#      line, no traceback), one notebook under nbval, and a C guest compiled against the
#      installed spear.h and run.
#
# Usage: scripts/check_installed.sh   (make test runs it after pytest)
#   PY=…       a Python that has `build` (default: .venv/bin/python of the checkout)
#   PYTHON=…   the Python that makes the fresh venv (default python3)
#   KEEP=1     keep the temp dir (its path is printed)
# Fails loudly: the first failing step prints what it ran and its output, exit status 1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
[[ $PY != */* || $PY == /* ]] || PY=$PWD/$PY  # a relative path keeps working after cd
PYTHON=${PYTHON:-python3}
CC=${CC:-clang}
NOTEBOOK=${NOTEBOOK:-notebooks/01_epoll_tour.ipynb}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/spear-installed.XXXXXX")
SECONDS=0

cleanup() {
    if [[ ${KEEP:-0} == 1 ]]; then echo "check_installed: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

step() { printf '\n== check_installed [%ss]: %s\n' "$SECONDS" "$*"; }
fail() { printf '\ncheck_installed: FAILED: %s\n' "$*" >&2; exit 1; }

# run LOG CMD...: run CMD with output to LOG; on failure show LOG and stop
run() {
    local log=$1 rc=0; shift
    "$@" >"$log" 2>&1 || rc=$?
    if [[ $rc != 0 ]]; then
        cat "$log" >&2
        fail "exit status $rc from: $*"
    fi
}
# expect LOG REGEX: LOG must match REGEX (extended)
expect() {
    grep -Eq -- "$2" "$1" || { cat "$1" >&2; fail "no line matching /$2/ in $1"; }
}

case $WORK in "$ROOT"/*) fail "temp dir $WORK is inside the checkout";; esac

step "build the sdist and a wheel from it ($PY -m build)"
run "$WORK/build.log" "$PY" -m build --outdir "$WORK/dist" "$ROOT"
shopt -s nullglob
sdists=("$WORK"/dist/*.tar.gz)
wheels=("$WORK"/dist/*.whl)
shopt -u nullglob
[[ ${#sdists[@]} == 1 && ${#wheels[@]} == 1 ]] || fail "expected one sdist and one wheel in $WORK/dist"
WHEEL=${wheels[0]}
if grep -Ei "deprecat" "$WORK/build.log"; then fail "the build printed deprecation warnings"; fi

step "a wheel straight from (a copy of) the tree holds the same files as the one from the sdist"
mkdir "$WORK/src"  # a copy: an in-tree wheel build would leave ./build/lib behind
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$ROOT" ls-files -co --exclude-standard -z \
        | tar -C "$ROOT" --null --ignore-failed-read -T - -cf - 2>/dev/null \
        | tar -C "$WORK/src" -xf -
else
    tar -C "$ROOT" --exclude=.venv --exclude='*.egg-info' -cf - . | tar -C "$WORK/src" -xf -
fi
run "$WORK/build-tree.log" "$PY" -m build --wheel --outdir "$WORK/tree" "$WORK/src"
listing() { "$PY" -c 'import sys, zipfile; print("\n".join(sorted(
    n for n in zipfile.ZipFile(sys.argv[1]).namelist() if not n.endswith("/RECORD"))))' "$1"; }
if ! diff <(listing "$WHEEL") <(listing "$WORK"/tree/*.whl) >"$WORK/wheel.diff"; then
    cat "$WORK/wheel.diff" >&2
    fail "the sdist lacks files the tree has (< from sdist, > from tree)"
fi
echo "$(listing "$WHEEL" | wc -l) files in $(basename "$WHEEL")"

step "install $(basename "$WHEEL")[test,whisper] into a fresh venv"
run "$WORK/venv.log" "$PYTHON" -m venv "$WORK/venv"
BIN=$WORK/venv/bin
run "$WORK/pip.log" "$BIN/python" -m pip install --quiet "$WHEEL[test,whisper]"

mkdir "$WORK/elsewhere"
cd "$WORK/elsewhere"
unset PYTHONPATH
export PATH="$BIN:$PATH"
SL=$BIN/spear-lab

step "the package is imported from the venv, not the checkout"
run "$WORK/where.log" "$BIN/python" -c 'import spear_lab, spear_lab.guests as g
print(spear_lab.__file__); print(g.sdk_dir())'
cat "$WORK/where.log"
if grep -v "^$WORK/venv/" "$WORK/where.log"; then fail "spear_lab is not the installed copy"; fi

step "spear-lab --version reads the installed metadata"
VERSION=$(basename "$WHEEL" | cut -d- -f2)
run "$WORK/version.log" "$SL" --version
expect "$WORK/version.log" "^spear-lab $VERSION\$"

step "spear-lab guests"
run "$WORK/guests.log" "$SL" guests
for g in realtime_asr mic_rtasr epoll_tour backpressure; do
    expect "$WORK/guests.log" "^$g +$WORK/venv/.*/spear_lab/guests/sdk/build/$g\.wasm\$"
done

step "spear-lab sdk"
run "$WORK/sdk.log" "$SL" sdk
cat "$WORK/sdk.log"
INCLUDE=$("$SL" sdk --include-dir)
[[ $INCLUDE == "$WORK/venv/"* && -f $INCLUDE/spear.h ]] || fail "sdk --include-dir: $INCLUDE has no spear.h"

step "spear-lab demo"
run "$WORK/demo.log" "$SL" demo
tail -n 3 "$WORK/demo.log"
expect "$WORK/demo.log" "^completed "
expect "$WORK/demo.log" "^spear-lab demo: [1-9][0-9]* segments; WER"

step "spear-lab run realtime_asr --backend local --fast (the installed demo speech as the mic)"
WAV=$("$BIN/python" -c 'from spear_lab.cli import DEMO_WAV; print(DEMO_WAV)')
run "$WORK/run.log" "$SL" run realtime_asr --backend local --fast --mic "file:$WAV"
tail -n 1 "$WORK/run.log"
expect "$WORK/run.log" "^--- realtime_asr: exit 0;.* transcripts [1-9]"

step "user errors are one line on stderr and a non-zero exit, never a traceback"
user_error() {  # user_error STATUS CMD...
    local want=$1; shift
    local rc=0
    "$@" >"$WORK/err.out" 2>"$WORK/err.log" || rc=$?
    [[ $rc == "$want" ]] || { cat "$WORK/err.log" >&2; fail "exit $rc (want $want) from: $*"; }
    [[ $(wc -l <"$WORK/err.log") == 1 ]] && ! grep -q Traceback "$WORK/err.log" \
        || { cat "$WORK/err.log" >&2; fail "not one clear line from: $*"; }
    cat "$WORK/err.log"
}
user_error 2 "$SL" run no_such_guest.wasm
user_error 2 "$SL" demo --no-such-flag
user_error 2 "$SL" run epoll_tour --mic file:/no/such.wav

step "notebook $(basename "$NOTEBOOK") under nbval, copied out of the checkout"
cp "$ROOT/$NOTEBOOK" "$WORK/elsewhere/"
run "$WORK/nbval.log" "$BIN/python" -m pytest "$(basename "$NOTEBOOK")" --nbval-lax \
    --nbval-current-env -p no:cacheprovider -q
tail -n 1 "$WORK/nbval.log"

step "a C guest compiled against the installed spear.h ($CC \$(spear-lab sdk --cflags)), run"
cp "$ROOT/scripts/installed_sdk_guest.c" sdk_guest.c
read -ra CFLAGS <<<"$("$SL" sdk --cflags)"
run "$WORK/cc.log" "$CC" "${CFLAGS[@]}" -Werror -Wl,--strip-all -o sdk_guest.wasm sdk_guest.c
run "$WORK/guest.log" "$SL" run "$PWD/sdk_guest.wasm" --mic stub --backend stub
cat "$WORK/guest.log"
expect "$WORK/guest.log" "^sdk_guest ok "
expect "$WORK/guest.log" "^--- sdk_guest: exit 0;"

step "all passed in $SECONDS s"
