#!/bin/sh
# Registers this Restora folder for the current user (copied into the built folder as install.sh):
# `restora` and `restora-gui` in ~/.local/bin, the desktop entry (opens photos from a file
# manager) and the icon. Run it again after moving the folder. Nothing outside ~/.local changes.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
mkdir -p "$HOME/.local/bin" "$data/applications" "$data/icons/hicolor/scalable/apps" "$data/icons/hicolor/256x256/apps"
ln -sf "$here/restora" "$HOME/.local/bin/restora"
ln -sf "$here/restora-gui" "$HOME/.local/bin/restora-gui"
sed -e "s|^Exec=restora-gui|Exec=\"$here/restora-gui\"|" -e "s|^TryExec=restora-gui|TryExec=$here/restora-gui|" \
  "$here/restora.desktop" > "$data/applications/restora.desktop"
cp "$here/restora.svg" "$data/icons/hicolor/scalable/apps/restora.svg"
cp "$here/restora-256.png" "$data/icons/hicolor/256x256/apps/restora.png"
update-desktop-database "$data/applications" 2>/dev/null || true
echo "Restora registered: $HOME/.local/bin/restora-gui, $data/applications/restora.desktop"
