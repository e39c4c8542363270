#!/bin/busybox sh
# PID 1 of the IPVS test VM (packed into the initramfs by fetch-kernel.sh; booted by run.sh).
# Mounts the host root (read-only 9p) at /host and the job share (writable 9p) at
# /host/run/fulcrum-job, then runs job.sh chrooted into the host root and powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in /modules/*.ko; do insmod "$m" || echo "init: insmod $m failed"; done

die() { echo "init: $*"; poweroff -f; }
O=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$O,ro,cache=loose" hostroot /host || die "cannot mount the host root"
mount -t tmpfs -o mode=1777 tmpfs /host/tmp
mount -t tmpfs -o mode=755 tmpfs /host/run
mkdir -p /host/run/fulcrum-job
J=/host/run/fulcrum-job
mount -t 9p -o "$O" job "$J" || die "cannot mount the job share"
. "$J/config"   # MODROOT: the module tree of this kernel; REPO: the repository (host paths)
# The repository has its own share mounted at its host path: a clone under /tmp (as CI may make)
# would otherwise be hidden by the guest's tmpfs /tmp.
mkdir -p "/host$REPO" 2>/dev/null
mount -t 9p -o "$O,ro,cache=loose" repo "/host$REPO" || die "cannot mount the repository at $REPO"
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs tmpfs /host/dev/shm
mount -t bpf bpf /host/sys/fs/bpf 2>/dev/null
mount -t debugfs debugfs /host/sys/kernel/debug 2>/dev/null

# The kernel runs this helper (in the initramfs root) to load modules on demand: IPVS schedulers,
# veth, ipip... It resolves them with kmod's modprobe from the host against MODROOT.
cat > /modprobe <<EOS
#!/bin/busybox sh
exec /bin/busybox chroot /host /sbin/modprobe -d "$MODROOT" "\$@"
EOS
chmod +x /modprobe
echo /modprobe > /proc/sys/kernel/modprobe

hostname fulcrum-vm
ip link set lo up
chroot /host /sbin/modprobe -d "$MODROOT" ip_vs > "$J/modprobe.log" 2>&1 \
  || echo "init: modprobe ip_vs failed" >> "$J/modprobe.log"

env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb \
  FULCRUM_VM=1 chroot /host /bin/bash /run/fulcrum-job/job.sh > "$J/stdout" 2> "$J/stderr" < /dev/null
echo $? > "$J/rc.tmp"
mv "$J/rc.tmp" "$J/rc"
sync
umount "$J"
poweroff -f
