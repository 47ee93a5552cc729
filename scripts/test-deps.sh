#!/usr/bin/env bash
# Installs (or demands) the real tools AMWI's tests run: tests never skip for want of one.
set -euo pipefail

# command -> Debian package
declare -A need=(
	[bsdtar]=libarchive-tools
	[zstd]=zstd
	[xz]=xz-utils
	[bzip2]=bzip2
	[repo-add]=pacman-package-manager
	[pacman]=pacman-package-manager
	[rsync]=rsync
	[systemd-socket-activate]=systemd
	[systemd-analyze]=systemd
	[qemu-arm-static]=qemu-user-static
	[qemu-aarch64-static]=qemu-user-static
	[script]=bsdutils
	[chromium]=chromium
	[promtool]=prometheus
	[curl]=curl
	[nginx]=nginx
)

# repo-add sources makepkg's shell libraries, which Debian ships in `makepkg` (only
# recommended by pacman-package-manager, so --no-install-recommends leaves it out).
makepkg_lib=/usr/share/makepkg/util/compress.sh

missing=()
for cmd in "${!need[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
[[ -f $makepkg_lib ]] || missing+=(makepkg)
if ((${#missing[@]} == 0)); then
	echo "test-deps: all test tools present"
	exit 0
fi
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
	echo "test-deps: missing tools; install these Debian packages as root: $pkgs" >&2
	exit 1
fi
echo "test-deps: installing $pkgs"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $pkgs
for cmd in "${!need[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || { echo "test-deps: $cmd still missing after installing ${need[$cmd]}" >&2; exit 1; }
done
[[ -f $makepkg_lib ]] || { echo "test-deps: $makepkg_lib still missing after installing makepkg" >&2; exit 1; }
