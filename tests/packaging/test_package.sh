#!/bin/sh
# packaging-deb: makes the .debs with cpack from the build directory, unpacks
# them into a temporary root, and builds and runs hello.c against that root
# four ways: pkg-config (shared, and static, which needs weft.pc's private
# fields right) and find_package(weft) (weft::weft, weft::weft_static).
# packaging-rpm: makes the .rpms and checks their metadata and file lists.
#
# Usage (tests/packaging/CMakeLists.txt passes it all):
#   test_package.sh deb|rpm BUILD_DIR SOURCE_DIR CPACK CMAKE CC VERSION
#                   SANITIZED APPS HEADER...
# Exits 0 on success, 77 (ctest SKIP_RETURN_CODE) when it cannot apply,
# 1 on any failure. Leaves nothing behind but what any install step writes
# into BUILD_DIR (install_manifest_*.txt, packaging/install/weft.pc).
set -eu

kind=$1 build=$2 src=$3 cpack=$4 cmake=$5 cc=$6 version=$7 sanitized=$8
apps=$9
shift 9
headers="$*"
here=$(cd "$(dirname "$0")" && pwd)

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
skip() {
  echo "SKIP: $*"
  exit 77
}
step() { echo "-- $*"; }

if [ "$sanitized" = ON ]; then
  skip "sanitizer build: programs linked against it need the sanitizer" \
    "runtime, so a package made from it is no package to test"
fi
case $kind in
deb)
  command -v dpkg-deb >/dev/null || fail "dpkg-deb missing"
  command -v dpkg-shlibdeps >/dev/null ||
    fail "dpkg-shlibdeps missing (scripts/deps.sh test installs dpkg-dev)"
  command -v pkg-config >/dev/null || fail "pkg-config missing"
  gen=DEB
  ;;
rpm)
  command -v rpmbuild >/dev/null ||
    skip "rpmbuild missing (scripts/deps.sh test installs rpm)"
  gen=RPM
  ;;
*) fail "unknown package kind $kind" ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-packaging.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# ---- make the packages, out of the tree ----

step "cpack -G $gen"
if ! (cd "$build" && "$cpack" -G "$gen" -B "$tmp/out") >"$tmp/cpack.log" 2>&1; then
  cat "$tmp/cpack.log" >&2
  fail "cpack -G $gen"
fi

# ---- rpm: metadata and file lists ----

# has LIST PATTERN: LIST (a file) holds a line matching PATTERN (grep -E).
has() { grep -Eq "$2" "$1" || fail "$(basename "$1" .list): no $2"; }

if [ "$kind" = rpm ]; then
  rel=$version-1
  for f in "$tmp/out"/*.rpm; do
    [ -f "$f" ] || fail "cpack made no .rpm"
    name=$(rpm -qp --qf '%{NAME}' "$f" 2>/dev/null)
    meta=$(rpm -qp --qf '%{VERSION}-%{RELEASE} %{LICENSE}' "$f" 2>/dev/null)
    [ "$meta" = "$rel MIT" ] || fail "$name: version/license '$meta'"
    rpm -qpl "$f" 2>/dev/null >"$tmp/$name.list"
    rpm -qp --requires "$f" 2>/dev/null >"$tmp/$name.req"
    rpm -qp --provides "$f" 2>/dev/null >"$tmp/$name.prov"
    # Everything under /usr, and no directory the system owns.
    ! grep -v '^/usr/' "$tmp/$name.list" || fail "$name installs outside /usr"
    ! grep -Eq '^/usr(/lib|/lib64|/include|/bin|/share)?$' "$tmp/$name.list" ||
      fail "$name owns a system directory"
  done
  for p in weft weft-devel; do
    [ -f "$tmp/$p.list" ] || fail "no $p rpm; got: $(ls "$tmp/out")"
  done
  step "weft: $(tr '\n' ' ' <"$tmp/weft.list")"
  has "$tmp/weft.list" '/libweft\.so\.[0-9]+$'
  has "$tmp/weft.list" "/libweft\\.so\\.$version\$"
  ! grep -Eq '\.a$|\.h$|\.pc$|/libweft\.so$' "$tmp/weft.list" ||
    fail "weft carries development files"
  has "$tmp/weft.req" '^libevent_core'
  has "$tmp/weft.prov" '^libweft\.so\.[0-9]+'
  step "weft-devel: $(wc -l <"$tmp/weft-devel.list") files"
  for h in $headers; do
    has "$tmp/weft-devel.list" "/include/weft/$h\$"
  done
  for f in '/libweft\.so$' '/libweft\.a$' '/pkgconfig/weft\.pc$' \
    '/cmake/weft/weftConfig\.cmake$' '/cmake/weft/weftConfigVersion\.cmake$' \
    '/cmake/weft/weftTargets\.cmake$'; do
    has "$tmp/weft-devel.list" "$f"
  done
  ! grep -q '\.so\.' "$tmp/weft-devel.list" ||
    fail "weft-devel carries the runtime library"
  has "$tmp/weft-devel.req" "^weft = $rel\$"
  if [ "$apps" = ON ]; then
    [ -f "$tmp/weft-apps.list" ] || fail "no weft-apps rpm"
    has "$tmp/weft-apps.list" '^/usr/bin/weft-tour$'
    has "$tmp/weft-apps.req" '^libweft\.so\.[0-9]+'
  fi
  echo "packaging-rpm: ok"
  exit 0
fi

# ---- deb: metadata, contents, and a program built against them ----

rel=$version-1
arch=$(dpkg --print-architecture)
lib=$tmp/out/libweft${version%%.*}_${rel}_$arch.deb
dev=$tmp/out/libweft-dev_${rel}_$arch.deb
if [ ! -f "$lib" ] || [ ! -f "$dev" ]; then
  fail "missing .debs; got: $(ls "$tmp/out")"
fi
field() { dpkg-deb -f "$1" "$2"; }
case $(field "$lib" Depends) in
*libevent-core*) ;;
*) fail "$(basename "$lib"): Depends lacks libevent: $(field "$lib" Depends)" ;;
esac
case $(field "$dev" Depends) in
*"libweft${version%%.*} (= $rel)"*libevent-dev*) ;;
*) fail "libweft-dev: Depends: $(field "$dev" Depends)" ;;
esac
debs="$lib $dev"
if [ "$apps" = ON ]; then
  debs="$debs $tmp/out/weft-apps_${rel}_$arch.deb"
fi

root=$tmp/root
for d in $debs; do
  [ -f "$d" ] || fail "missing $(basename "$d")"
  step "$(basename "$d"): $(dpkg-deb -c "$d" | grep -vc '/$') files"
  dpkg-deb -x "$d" "$root"
done

# Where the library went (lib/ or lib/<multiarch>/, as GNUInstallDirs chose).
pc=$(find "$root" -name weft.pc)
[ -n "$pc" ] || fail "no weft.pc"
libdir=$(dirname "$(dirname "$pc")")
for h in $headers; do
  [ -f "$root/usr/include/weft/$h" ] || fail "header $h not installed"
done
for f in libweft.so libweft.a "libweft.so.${version%%.*}" \
  cmake/weft/weftConfig.cmake cmake/weft/weftConfigVersion.cmake; do
  [ -e "$libdir/$f" ] || fail "$f not in ${libdir#"$root"}"
done
if [ "$apps" = ON ]; then
  [ -x "$root/usr/bin/weft-tour" ] || fail "weft-tour not in weft-apps"
fi

# What a consumer's build reads may not point back into the build or source
# tree (the binaries do name their sources, for assert and debug info).
if grep -rlF -e "$build" -e "$src" "$pc" "$libdir/cmake/weft" \
  "$root/usr/include/weft" >"$tmp/leaks"; then
  fail "the packages name the build or source tree: $(cat "$tmp/leaks")"
fi
grep -qx 'prefix=/usr' "$pc" || fail "weft.pc: $(grep ^prefix= "$pc")"

cp "$here/hello.c" "$tmp/hello.c"
cflags="-std=c11 -Wall -Wextra -Werror"
expect="weft $version: sum 60"

# run NAME: runs $tmp/NAME against the root's libraries and checks its output.
run() {
  out=$(LD_LIBRARY_PATH=$libdir "$tmp/$1") || fail "$1 exited $?: $out"
  [ "$out" = "$expect" ] || fail "$1 printed '$out', not '$expect'"
  echo "   $1: $out"
}
# uses_so NAME yes|no: NAME loads libweft.so from the root, or not at all.
uses_so() {
  found=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/$1" | grep 'libweft\.so' || true)
  if [ "$2" = yes ]; then
    case $found in
    *"$libdir/"*) ;;
    *) fail "$1 does not load the root's libweft.so: ${found:-none}" ;;
    esac
  else
    [ -z "$found" ] || fail "$1 should be static, loads $found"
  fi
}

# pkg-config: the root's weft.pc, with its prefix moved into the root. That
# every path moves with it shows weft.pc derives them all from ${prefix}.
# (The override reaches libevent_core.pc too; its -L then points into the
# root, finds nothing there, and the linker falls back to the system's.)
step "pkg-config"
pkgc() {
  PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config \
    --define-variable=prefix="$root/usr" "$@" weft
}
[ "$(pkgc --modversion)" = "$version" ] || fail "pkg-config --modversion"
static_libs=$(pkgc --static --libs)
case " $static_libs " in
*" -levent_core "*) ;;
*) fail "pkg-config --static --libs lacks -levent_core: $static_libs" ;;
esac
# shellcheck disable=SC2046,SC2086
"$cc" $cflags -o "$tmp/hello-pc" "$tmp/hello.c" $(pkgc --cflags) $(pkgc --libs) ||
  fail "build against weft.pc"
uses_so hello-pc yes
run hello-pc
# Static: libweft.a instead of -lweft, everything else from Libs.private and
# Requires.private, so a missing private dependency fails the link.
# shellcheck disable=SC2046,SC2086
"$cc" $cflags -o "$tmp/hello-pc-static" "$tmp/hello.c" \
  $(pkgc --static --cflags) $(echo "$static_libs" | sed 's/-lweft\b/-l:libweft.a/') ||
  fail "static build against weft.pc ($static_libs)"
uses_so hello-pc-static no
run hello-pc-static

# find_package(weft) from a consumer project, nothing but the root on the
# search path.
step "find_package(weft)"
mkdir "$tmp/consumer"
cat >"$tmp/consumer/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(weft $version REQUIRED)
if(NOT weft_DIR MATCHES "^$root/")
  message(FATAL_ERROR "found weft outside the root: \${weft_DIR}")
endif()
set(CMAKE_C_STANDARD 11)
add_compile_options(-Wall -Wextra -Werror)
add_executable(hello-cmake $tmp/hello.c)
target_link_libraries(hello-cmake PRIVATE weft::weft)
add_executable(hello-cmake-static $tmp/hello.c)
target_link_libraries(hello-cmake-static PRIVATE weft::weft_static)
set_target_properties(hello-cmake hello-cmake-static PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY $tmp)
EOF
if ! "$cmake" -S "$tmp/consumer" -B "$tmp/consumer/build" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$root/usr" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$tmp/cmake.log" 2>&1 ||
  ! "$cmake" --build "$tmp/consumer/build" >>"$tmp/cmake.log" 2>&1; then
  cat "$tmp/cmake.log" >&2
  fail "consumer project with find_package(weft)"
fi
uses_so hello-cmake yes
run hello-cmake
uses_so hello-cmake-static no
run hello-cmake-static

echo "packaging-deb: ok"
