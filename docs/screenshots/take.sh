#!/usr/bin/env bash
# Re-take the README screenshots of the real window under Xvfb (needs ../shared/tools and ../shared/data).
# Usage: docs/screenshots/take.sh   (from the repository root; SHARED=/path/to/shared to override)
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${SHARED:-../shared}
shot=$shared/tools/gui-screenshot.sh
real=$shared/data/real
export PATH="$PWD/.venv/bin:$PATH" XDG_CONFIG_HOME="$(mktemp -d)"  # default settings, not the user's
out=$(mktemp -d)
# The title is matched at once ("Restora"); SETTLE waits for the restoration to finish.
SETTLE=45 "$shot" docs/screenshots/main-dark.png "Restora" \
  python docs/screenshots/scenes.py main dark "$real/lowlight_lime_1.png"
SETTLE=45 "$shot" docs/screenshots/main-light.png "Restora" \
  python docs/screenshots/scenes.py main light "$real/lowlight_lime_1.png"
SETTLE=90 "$shot" docs/screenshots/filmstrip.png "Restora" \
  python docs/screenshots/scenes.py filmstrip dark "$real/noisy_dog.png" "$real/oldphoto_faded.png" \
  "$real/blurry_fountain.png" "$real/face_04.png" "$real/lowlight_dicm_03.jpg" "$real/noisy_window.png"
SETTLE=90 "$shot" docs/screenshots/batch-queue.png "Restora" \
  python docs/screenshots/scenes.py batch light "$out" "$real/noisy_dog.png" "$real/face_14.png" \
  "$real/oldphoto_scratches.png"
SETTLE=60 "$shot" docs/screenshots/uncertainty.png "Restora" \
  python docs/screenshots/scenes.py uncertainty dark "$real/blurry_fountain.png"
SETTLE=4 "$shot" docs/screenshots/model-manager.png "Models" python docs/screenshots/scenes.py models dark
rm -rf "$out" "$XDG_CONFIG_HOME"
