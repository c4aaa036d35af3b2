#!/usr/bin/env bash
# libuaio.so must be a good guest: exactly glibc's 17 AIO names, FreeBSD's aio_readv/aio_writev/aio_waitcomplete, illumos' aio_waitn and our uaio_* as global
# symbols, no libswift*.so, no RUNPATH, nothing needed beyond libc, libm, libstdc++,
# libgcc_s, liburing and libaio.
set -eu
lib=${1:?usage: check-exports.sh libuaio.so}
fail=0
expected="aio_cancel aio_cancel64 aio_error aio_error64 aio_fsync aio_fsync64 aio_init aio_read aio_read64 aio_return aio_return64 aio_suspend aio_suspend64 aio_write aio_write64 lio_listio lio_listio64 aio_readv aio_writev aio_waitcomplete aio_waitn"
globals=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[A-Z]$/ { print $3 }' | sort)
for name in $expected; do
    echo "$globals" | grep -qx "$name" || { echo "check-exports: $name is not exported"; fail=1; }
done
extra=$(echo "$globals" | grep -vxE "$(echo $expected | tr ' ' '|')|uaio_[a-z0-9_]+" || true)
[ -z "$extra" ] || { echo "check-exports: unexpected global symbols:"; echo "$extra"; fail=1; }
needed=$(readelf -d "$lib" | awk '/NEEDED/ { gsub(/[\[\]]/, "", $5); print $5 }')
for n in $needed; do
    case $n in libc.so.*|ld-linux*.so.*|libm.so.*|libstdc++.so.*|libgcc_s.so.*|liburing.so.*|libaio.so.*) ;;
        *) echo "check-exports: needs $n"; fail=1;; esac
done
# SwiftPM adds RUNPATH $ORIGIN, which is harmless; a path into the toolchain would not be.
runpath=$(readelf -d "$lib" | awk '/RUNPATH|RPATH/ { print $NF }')
case "$runpath" in ""|"[\$ORIGIN]") ;; *) echo "check-exports: RUNPATH $runpath"; fail=1;; esac
if [ $fail = 0 ]; then echo "check-exports: 17 glibc names + aio_readv/aio_writev/aio_waitcomplete/aio_waitn + $(echo "$globals" | grep -c '^uaio_') uaio_* exported; needs: $(echo $needed)"; fi
exit $fail
