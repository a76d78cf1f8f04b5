#!/usr/bin/env bash
# Unpack Debian's Berkeley DB 5.3 development package into vendor/libdb5.3-dev/.
#
# The copy gives libdb-sys a db.h (to regenerate bindings) and libdb.a (for
# LIBDB_STATIC=1) without installing anything system-wide. The package comes
# from the configured apt sources only (`apt-get download`), never from any
# other website. The unpacked tree and the .deb are gitignored.
#
# Usage: vendor/fetch-libdb.sh        (run `apt-get update` first if apt has
#                                      never fetched its package lists)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
package="libdb5.3-dev"
dest="$here/$package"

for tool in apt-get dpkg-deb; do
    if ! command -v "$tool" >/dev/null; then
        echo "fetch-libdb.sh: '$tool' not found; this script needs a Debian-like system" >&2
        exit 1
    fi
done

# As root, apt-get download drops privileges to the _apt user, so download
# into a scratch directory that user may write to.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
    chown _apt "$scratch"
fi
if ! (cd "$scratch" && apt-get download "$package"); then
    echo "fetch-libdb.sh: 'apt-get download $package' failed; try 'apt-get update' first" >&2
    exit 1
fi

rm -f "$here"/"$package"_*.deb
mv "$scratch"/"$package"_*.deb "$here"/
deb="$(ls "$here"/"$package"_*.deb | head -n 1)"
rm -rf "$dest"
mkdir -p "$dest"
dpkg-deb -x "$deb" "$dest"

multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"
echo "unpacked $(basename "$deb") into $dest"
echo "  header : $dest/usr/include/db.h"
echo "  library: $dest/usr/lib/$multiarch/"
echo "use it with: LIBDB_DIR=$dest/usr (add LIBDB_STATIC=1 to link libdb statically)"
