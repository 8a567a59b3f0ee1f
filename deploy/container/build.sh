#!/bin/sh
# Builds the portwarden image from this checkout, offline: no base image and
# nothing from a registry (Debian's buildah; busybox-static for /bin/sh).
#
#   deploy/container/build.sh [--tag NAME:TAG] [--oci-archive FILE]
#
# Default tag portwarden:<version of Cargo.toml>. `portwarden --version` in
# the image prints the git revision it was built from. --oci-archive also
# exports the image (`buildah push … oci-archive:FILE`), for a registry
# (`skopeo copy oci-archive:FILE docker://…`) or kind/k3s (`kind load
# image-archive FILE`, `k3s ctr images import FILE`).
set -eu
root_dir=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root_dir"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
tag="portwarden:$version"
archive=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=$2; shift 2 ;;
    --oci-archive) archive=$2; shift 2 ;;
    *) echo "usage: $0 [--tag NAME:TAG] [--oci-archive FILE]" >&2; exit 2 ;;
  esac
done
for tool in buildah busybox strip ldd; do
  command -v "$tool" >/dev/null || { echo "$0: $tool not found (apt-get install buildah busybox-static binutils)" >&2; exit 2; }
done
# The binary and the git revision it names: a static musl build when that
# target is installed, else glibc with its shared libraries copied below
# (the build the .deb ships too).
built=$(packaging/release-binary.sh)
# shellcheck disable=SC2086
set -- $built
bin=$1 rev=$2

# The staged root: only paths this script creates, under target/image.
stage=target/image
rm -rf "$stage"
mkdir -p "$stage/root/usr/local/bin" "$stage/root/bin" "$stage/root/etc" "$stage/root/tmp" "$stage/root/data"
strip --strip-all -o "$stage/root/usr/local/bin/portwarden" "$bin"
# busybox-static and one link per applet the shell may run (sh, ls, mv, …).
cp "$(command -v busybox)" "$stage/root/bin/busybox"
if ldd "$stage/root/bin/busybox" >/dev/null 2>&1; then
  echo "$0: $(command -v busybox) is not static (apt-get install busybox-static)" >&2; exit 2
fi
for applet in $("$stage/root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$stage/root/bin/$applet"
done
# Exactly the shared libraries the binary needs (none when it is static).
ldd "$stage/root/usr/local/bin/portwarden" 2>/dev/null | awk '/=> \//{print $3} /^\t\//{print $1}' | while read -r lib; do
  mkdir -p "$stage/root$(dirname "$lib")"
  cp -L "$lib" "$stage/root$lib"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/tmp:/bin/sh\n' > "$stage/root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$stage/root/etc/group"
chmod 1777 "$stage/root/tmp"
chown 65532:65532 "$stage/root/data" 2>/dev/null || true

buildah --runtime runc bud --cgroup-manager=cgroupfs --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
  --build-arg VERSION="$version" --build-arg REVISION="$rev" \
  -f "$root_dir/Containerfile" -t "$tag" "$stage" >&2
if [ -n "$archive" ]; then
  # Never replaces a file it did not write.
  [ ! -e "$archive" ] || { echo "$0: $archive exists; remove it or choose another --oci-archive" >&2; exit 2; }
  buildah push "$tag" "oci-archive:$archive:$tag" >&2
fi
echo "$tag"
