#!/usr/bin/env bash
# Sets up the Linux lane on a fresh Debian bookworm machine, idempotently, printing the time of each phase:
#
#   1. apt     qemu-system-x86, busybox-static and the kernel build dependencies; linux-source-6.12 from
#              bookworm-backports through a temporary sources list (the system's lists are left alone)
#   2. source  the kernel source unpacked under the cache
#   3. kernels kernel A (native VFIO type1) and kernel B (iommufd's VFIO container emulation), each cached by
#              (source version, config hash): an unchanged pair is never rebuilt; B is built incrementally in A's tree
#   4. adapter the C adapter (linux/adapter), static, against the source tree's uAPI headers (make headers
#              into the cache: the system's headers are not touched)
#   5. initramfs busybox + the adapter + /init, one per adapter build
#
# Not for: running anything (that is linux/run-lane.sh), or installing a kernel on this machine.
#
# Environment:
#   IOASID_LINUX_CACHE  cache directory (default /work/cache/ioasid-linux, else ~/.cache/ioasid-linux)
#   LINUX_SRC           use this kernel source tree instead of Debian's linux-source-6.12 (not modified: O= builds)
#   LINUX_CONFIG_EXTRA  an extra config fragment merged last into both kernels
#   LINUX_JOBS          make -j (default 2)
#   SKIP_APT=1          do not call apt-get (the packages are known to be there)
#
# Prints, last, the shell assignments run-lane.sh reads (KERNEL_A=..., KERNEL_B=..., INITRD=...), also written to
# $CACHE/lane.env.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${IOASID_LINUX_CACHE:-}" ]]; then
  if [[ -d /work ]]; then IOASID_LINUX_CACHE=/work/cache/ioasid-linux; else IOASID_LINUX_CACHE="$HOME/.cache/ioasid-linux"; fi
fi
CACHE="$IOASID_LINUX_CACHE"
JOBS="${LINUX_JOBS:-2}"
mkdir -p "$CACHE"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi

phase_start=0
phase() { phase_name="$1"; phase_start=$(date +%s.%N); echo "== setup: $phase_name" >&2; }
phase_end() {
  local t
  t=$(echo "$(date +%s.%N) - $phase_start" | bc)
  printf '== setup: %s done in %.1f s%s\n' "$phase_name" "$t" "${1:+ ($1)}" >&2
  printf '%s %.1f %s\n' "$phase_name" "$t" "${1:-}" >>"$CACHE/phases.log"
}
: >"$CACHE/phases.log"

# ---------------------------------------------------------------------------------------------------------------
phase apt
need_pkgs=(qemu-system-x86 busybox-static flex bison libelf-dev libssl-dev cpio kmod bc xz-utils make gcc)
missing=()
for p in "${need_pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [[ -z "${LINUX_SRC:-}" ]] && ! dpkg-query -W -f='${Status}' linux-source-6.12 2>/dev/null | grep -q 'install ok installed'; then
  missing+=(linux-source-6.12)
fi
if [[ ${#missing[@]} -gt 0 && "${SKIP_APT:-0}" != 1 ]]; then
  mkdir -p "$CACHE/apt/lists/partial"
  cat >"$CACHE/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
deb http://deb.debian.org/debian bookworm-backports main
EOF
  APT=(-o "Dir::Etc::sourcelist=$CACHE/apt/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$CACHE/apt/lists")
  $SUDO apt-get "${APT[@]}" update -q >&2
  base=()
  for p in "${missing[@]}"; do [[ $p == linux-source-6.12 ]] || base+=("$p"); done
  if [[ ${#base[@]} -gt 0 ]]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${APT[@]}" install -y -q --no-install-recommends "${base[@]}" >&2
  fi
  if [[ " ${missing[*]} " == *" linux-source-6.12 "* ]]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${APT[@]}" install -y -q --no-install-recommends \
      -t bookworm-backports linux-source-6.12 >&2
  fi
  phase_end "installed: ${missing[*]}"
else
  phase_end "nothing to install"
fi

# ---------------------------------------------------------------------------------------------------------------
phase source
if [[ -n "${LINUX_SRC:-}" ]]; then
  SRC="$(cd "$LINUX_SRC" && pwd)"
  SRCVER="custom-$(make -s -C "$SRC" kernelversion 2>/dev/null)-$(echo "$SRC" | sha256sum | cut -c1-8)"
  phase_end "using $SRC"
else
  SRCVER="$(dpkg-query -W -f='${Version}' linux-source-6.12)"
  SRC="$CACHE/src/$SRCVER/linux-source-6.12"
  if [[ ! -f "$SRC/.unpacked" ]]; then
    rm -rf "$CACHE/src/$SRCVER"
    mkdir -p "$CACHE/src/$SRCVER"
    tar -C "$CACHE/src/$SRCVER" -xJf /usr/src/linux-source-6.12.tar.xz
    touch "$SRC/.unpacked"
    phase_end "unpacked $SRCVER"
  else
    phase_end "cached $SRCVER"
  fi
fi
BUILD="$CACHE/build/$SRCVER"
mkdir -p "$BUILD"

# ---------------------------------------------------------------------------------------------------------------
# build_kernel NAME FRAGMENT: echoes the cached bzImage path.
build_kernel() {
  local name="$1" frag="$2" fragments key out
  fragments=("$SRC/arch/x86/configs/x86_64_defconfig" "$SRC/kernel/configs/kvm_guest.config" "$HERE/configs/base.config" "$HERE/configs/$frag")
  if [[ -n "${LINUX_CONFIG_EXTRA:-}" ]]; then fragments+=("$LINUX_CONFIG_EXTRA"); fi
  key="$(cat "${fragments[@]}" | sha256sum | cut -c1-16)"
  out="$CACHE/kernels/$SRCVER-$key"
  if [[ -f "$out/bzImage" ]]; then
    echo "cached $name $SRCVER-$key" >&2
    echo "$out/bzImage"
    return
  fi
  (
    cd "$SRC"
    KCONFIG_CONFIG="$BUILD/.config" scripts/kconfig/merge_config.sh -m -O "$BUILD" "${fragments[@]}" >"$BUILD/merge-$name.log" 2>&1
    make -s O="$BUILD" olddefconfig >&2
    # Every option the lane depends on must have survived olddefconfig.
    local line bad=0
    while IFS= read -r line; do
      [[ $line =~ ^CONFIG_[A-Z0-9_]+=y$ ]] || continue
      grep -qx "$line" "$BUILD/.config" || { echo "config: $line did not survive (see $BUILD/merge-$name.log)" >&2; bad=1; }
    done < <(cat "$HERE/configs/base.config" "$HERE/configs/$frag")
    [[ $bad == 0 ]] || exit 1
    make O="$BUILD" -j"$JOBS" bzImage >"$BUILD/build-$name.log" 2>&1 || { tail -40 "$BUILD/build-$name.log" >&2; exit 1; }
  )
  mkdir -p "$out"
  cp "$BUILD/arch/x86/boot/bzImage" "$out/bzImage.tmp"
  cp "$BUILD/.config" "$out/config"
  mv "$out/bzImage.tmp" "$out/bzImage"
  echo "built $name $SRCVER-$key" >&2
  echo "$out/bzImage"
}

phase "build A (type1)"
KERNEL_A="$(build_kernel A type1.config)"
phase_end "$KERNEL_A"
phase "build B (iommufd vfio compat)"
KERNEL_B="$(build_kernel B iommufd-compat.config)"
phase_end "$KERNEL_B"

# ---------------------------------------------------------------------------------------------------------------
phase adapter
HDR="$CACHE/headers-build/$SRCVER/usr/include"
if [[ ! -f "$HDR/linux/iommufd.h" ]]; then
  make -s -C "$SRC" O="$CACHE/headers-build/$SRCVER" ARCH=x86_64 headers >&2
fi
make -s -C "$HERE/adapter" UAPI="$HDR" OUT="$CACHE/adapter" >&2
phase_end "$CACHE/adapter/ioasid-adapter"

# ---------------------------------------------------------------------------------------------------------------
phase initramfs
BUSYBOX="$(command -v busybox || echo /bin/busybox)"
ikey="$(cat "$CACHE/adapter/ioasid-adapter" "$HERE/initramfs/init" "$BUSYBOX" | sha256sum | cut -c1-16)"
INITRD="$CACHE/initrd/$ikey.cpio.gz"
if [[ ! -f "$INITRD" ]]; then
  root="$CACHE/initrd/root-$ikey"
  rm -rf "$root"
  mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc}
  cp "$BUSYBOX" "$root/bin/busybox"
  for a in sh mount mkdir cat echo ls sleep poweroff reboot grep dmesg tr; do ln -s busybox "$root/bin/$a"; done
  cp "$CACHE/adapter/ioasid-adapter" "$root/bin/ioasid-adapter"
  cp "$HERE/initramfs/init" "$root/init"
  chmod +x "$root/init"
  mkdir -p "$CACHE/initrd"
  (cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1 >"$INITRD.tmp")
  mv "$INITRD.tmp" "$INITRD"
  rm -rf "$root"
  phase_end "built $INITRD"
else
  phase_end "cached $INITRD"
fi

cat >"$CACHE/lane.env" <<EOF
KERNEL_A=$KERNEL_A
KERNEL_B=$KERNEL_B
INITRD=$INITRD
SRCVER=$SRCVER
EOF
cat "$CACHE/lane.env"
