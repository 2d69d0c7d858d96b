#!/usr/bin/env python3
"""Shift a root filesystem's owners into an id range, in place, the way an
unprivileged LXC container's rootfs is laid out on disk before idmapped mounts
(LXC cannot idmap an overlay, so `lxc-copy -s -B overlay` needs a shifted base).

Usage: shift.py DIR OFFSET   (uid -> uid+OFFSET, gid -> gid+OFFSET)

Owners, setuid/setgid bits (chown clears them) and the ids inside POSIX ACLs are
shifted; symlinks are chowned without being followed.
"""
import os
import stat
import struct
import sys

ACL_USER, ACL_GROUP = 0x02, 0x08


def shift_acl(raw, off):
    # system.posix_acl_*: a 4-byte version, then (u16 tag, u16 perm, u32 id) entries.
    out = bytearray(raw[:4])
    for i in range(4, len(raw), 8):
        tag, perm, ident = struct.unpack_from("<HHI", raw, i)
        if tag in (ACL_USER, ACL_GROUP):
            ident += off
        out += struct.pack("<HHI", tag, perm, ident)
    return bytes(out)


def shift(path, off):
    st = os.lstat(path)
    os.lchown(path, st.st_uid + off, st.st_gid + off)
    if stat.S_ISLNK(st.st_mode):
        return
    if st.st_mode & 0o6000:
        os.chmod(path, stat.S_IMODE(st.st_mode))
    for name in ("system.posix_acl_access", "system.posix_acl_default"):
        try:
            raw = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        os.setxattr(path, name, shift_acl(raw, off), follow_symlinks=False)


def main():
    root, off = sys.argv[1], int(sys.argv[2])
    shift(root, off)
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            shift(os.path.join(dirpath, name), off)


if __name__ == "__main__":
    main()
