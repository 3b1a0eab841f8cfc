#!/usr/bin/env bash
# Build a real ktserver (Kyoto Tycoon 0.9.56b, the maintained alticelabs/kyoto fork) from a source
# checkout, to use as the oracle of the differential tests:
#
#   tools/build-ktserver.sh /path/to/kyoto-checkout [/path/to/prefix]
#   KYOTOTYCOON_TEST_KTSERVER=/path/to/prefix/bin/ktserver python -m pytest
#
# Needs a C++ compiler and the zlib, lzo2 and Lua 5.1 headers
# (Debian: apt-get install g++ make zlib1g-dev liblzo2-dev liblua5.1-0-dev).
# The 2012 sources need -std=gnu++98 -fpermissive with a current g++. ktserver refuses ports >= 32768.
set -euo pipefail
src=${1:?usage: build-ktserver.sh KYOTO_CHECKOUT [PREFIX]}
src=$(cd "$src" && pwd)
prefix=${2:-$src/_install}
export CXXFLAGS="${CXXFLAGS:--O2} -std=gnu++98 -fpermissive -w"
export CFLAGS="${CFLAGS:--O2} -w"
# Debian installs Lua 5.1's headers under /usr/include/lua5.1 and names the library liblua5.1
lua_inc=$(pkg-config --cflags lua5.1 2>/dev/null || echo -I/usr/include/lua5.1)
lua_lib=$(pkg-config --libs lua5.1 2>/dev/null || echo -llua5.1)
jobs=$(nproc 2>/dev/null || echo 2)

cd "$src/kyotocabinet"
[ -f Makefile ] || ./configure --prefix="$prefix" --enable-lzo
make -j"$jobs"
make install

cd "$src/kyototycoon"
if [ ! -f Makefile ]; then
  PKG_CONFIG_PATH="$prefix/lib/pkgconfig" CPPFLAGS="-I$prefix/include $lua_inc" \
    LDFLAGS="-L$prefix/lib -Wl,-rpath,$prefix/lib" LIBS="$lua_lib" \
    ./configure --prefix="$prefix" --with-kc="$prefix" --enable-lua
  # configure's Lua probe links -llua; Debian names it liblua5.1
  sed -i "s/-llua\b/$lua_lib/g" Makefile
fi
make -j"$jobs"
make install
echo "ktserver: $prefix/bin/ktserver"
"$prefix/bin/ktserver" --version 2>&1 | head -1 || true
