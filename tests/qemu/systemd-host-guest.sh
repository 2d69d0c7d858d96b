#!/bin/bash
# Build & boot a Debian bookworm systemd + cgroup v2 guest under QEMU.
# usage: kvm-guest.sh build   # -> $W/{vmlinuz,initrd.img,guest.img}
#        kvm-guest.sh run     # boots, runs $W/share/run.sh inside as root, powers off; rc in $W/share/rc
#        (DRIVE: qemu's -drive for the root disk; default guest.img as a throwaway snapshot)
# (hutch copy of shared/reference/systemd-host-guest.sh; change: the guest also gets
#  systemd-container, for systemd-machined and machinectl)
# env: W (workdir), SRC (a Debian rootfs to copy; debootstrapped if unset or missing),
#      ACCEL (default tcg: /dev/kvm here is kvm_pvm and cannot run a stock kernel)
set -euo pipefail
W=${W:-/var/tmp/systemd-host-guest}; SRC=${SRC:-}; ACCEL=${ACCEL:-tcg}
mkdir -p "$W/share"; cd "$W"
install_qemu() {
  command -v qemu-system-x86_64 >/dev/null && return
  # qemu-utils 10.0 (bookworm-backports) is preinstalled and Breaks bookworm's qemu-system 7.2 -> take qemu-system-x86 from backports too
  f=/etc/apt/sources.list.d/tmp-bpo.sources
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" > $f
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86
  rm -f $f; apt-get update -qq
}
build() {
  install_qemu
  G=$W/guest; rm -rf "$G"
  if [ -n "$SRC" ] && [ -d "$SRC" ]; then cp -a "$SRC" "$G"
  else debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2 bookworm "$G" \
         "$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)"; fi
  cp /etc/resolv.conf "$G/etc/resolv.conf"
  mkdir -p "$G/etc/initramfs-tools/conf.d"
  # small initrd: only what's needed to mount root from virtio-blk
  printf 'virtio_pci\nvirtio_blk\next4\n' >> "$G/etc/initramfs-tools/modules"
  echo 'MODULES=list' > "$G/etc/initramfs-tools/conf.d/guesttest"; echo 'COMPRESS=gzip' >> "$G/etc/initramfs-tools/conf.d/guesttest"
  mount -t proc proc "$G/proc"; mount --bind /dev "$G/dev"
  trap 'umount "$G/dev" "$G/proc" 2>/dev/null || true' EXIT
  chroot "$G" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive chroot "$G" apt-get install -y -qq --no-install-recommends linux-image-amd64 udev systemd-container >/dev/null
  chroot "$G" apt-get clean
  umount "$G/dev" "$G/proc"; trap - EXIT
  cp "$G"/boot/vmlinuz-* vmlinuz; cp "$G"/boot/initrd.img-* initrd.img
  mkdir -p "$G/mnt/host"
  echo 'host /mnt/host 9p trans=virtio,version=9p2000.L,msize=262144,nofail 0 0' > "$G/etc/fstab"
  cat > "$G/usr/local/sbin/guesttest-run" <<'EOF'
#!/bin/sh
echo "KVMTEST-BEGIN uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ -x /mnt/host/run.sh ]; then /mnt/host/run.sh; rc=$?; else echo "no /mnt/host/run.sh"; rc=99; fi
echo "$rc" > /mnt/host/rc
echo "KVMTEST-END rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
EOF
  chmod +x "$G/usr/local/sbin/guesttest-run"
  cat > "$G/etc/systemd/system/guesttest.service" <<'EOF'
[Unit]
Description=run /mnt/host/run.sh, then power off
After=multi-user.target mnt-host.mount
Wants=mnt-host.mount
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/guesttest-run
ExecStopPost=/bin/systemctl --no-block poweroff
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
[Install]
WantedBy=multi-user.target
EOF
  ln -sf /etc/systemd/system/guesttest.service "$G/etc/systemd/system/multi-user.target.wants/guesttest.service"
  for u in serial-getty@ttyS0 getty@tty1 apt-daily.timer apt-daily-upgrade.timer e2scrub_reap networking; do
    ln -sf /dev/null "$G/etc/systemd/system/$u$( [[ $u == *.* ]] || echo .service)"; done
  rm -f guest.img; truncate -s 2G guest.img
  mkfs.ext4 -q -F -L root -d "$G" guest.img
}
run() {
  [ "$ACCEL" = tcg ] && A="-accel tcg,thread=multi -cpu max" || A="-enable-kvm -cpu host"
  rm -f share/rc
  timeout ${TIMEOUT:-600} qemu-system-x86_64 $A -m 2G -smp 2 -nographic -no-reboot \
    -kernel vmlinuz -initrd initrd.img \
    -append 'root=/dev/vda rw console=ttyS0 quiet systemd.unified_cgroup_hierarchy=1' \
    -drive "${DRIVE:-file=guest.img,format=raw,if=virtio,snapshot=on}" \
    -virtfs local,path="$W/share",mount_tag=host,security_model=none \
    -nic none | tee "$W/console.log" | sed -n '/KVMTEST-BEGIN/,/KVMTEST-END/p'
  exit "$(cat share/rc 2>/dev/null || echo 98)"
}
"$@"
