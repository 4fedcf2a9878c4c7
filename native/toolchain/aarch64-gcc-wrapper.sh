#!/bin/sh
# The cross compiler/linker driver for the linux-arm64 native-AOT publish (build.sh passes it as
# CppCompilerAndLinker). The .NET SDK passes clang's --target=aarch64-linux-gnu to the linker driver; gcc has no
# such option (it is a cross gcc already), so drop that one argument and hand everything else to
# aarch64-linux-gnu-gcc unchanged.
for a do
  shift
  case "$a" in
    --target=*) ;;
    *) set -- "$@" "$a" ;;
  esac
done
exec aarch64-linux-gnu-gcc "$@"
