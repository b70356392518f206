#!/usr/bin/env bash
# Re-take the README screenshots of the real window under Xvfb (needs ../shared/tools and ../shared/data).
# Usage: docs/screenshots/take.sh   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
shot=../shared/tools/gui-screenshot.sh
photo=../shared/data/real/noisy_dog.png
export PATH="$PWD/.venv/bin:$PATH" XDG_CONFIG_HOME="$(mktemp -d)"  # default settings, not the user's
out=$(mktemp -d)
SETTLE=12 "$shot" docs/screenshots/main-split.png "noisy_dog" python docs/screenshots/scenes.py main "$photo"
SETTLE=11 "$shot" docs/screenshots/batch-queue.png "noisy_dog" \
  python docs/screenshots/scenes.py batch "$photo" ../shared/data/real "$out"
SETTLE=4 "$shot" docs/screenshots/model-manager.png "Models" python docs/screenshots/scenes.py models
rm -rf "$out" "$XDG_CONFIG_HOME"
