#!/usr/bin/python3
# A FUSE filesystem for the stalled-disk e2e test: a read-only passthrough of BACKING mounted on
# MOUNT, whose readdir, getattr, open and read block while the file CONTROL/block exists (a hung NFS
# or FUSE mount, or a disk under heavy IO). CONTROL/blocked holds how many operations are blocked now.
# Needs root (mount(2)) and Debian's python3-fusepy (libfuse2). Runs in the foreground until unmounted.
import errno
import os
import sys
import threading
import time

from fusepy import FUSE, FuseOSError, Operations

backing, mount, control = sys.argv[1:4]
gate = os.path.join(control, 'block')
counter = os.path.join(control, 'blocked')
lock = threading.Lock()
blocked = 0


def publish():
    tmp = counter + '.tmp'
    with open(tmp, 'w') as f:
        f.write(str(blocked))
    os.replace(tmp, counter)


def wait_while_blocked():
    global blocked
    if not os.path.exists(gate):
        return
    with lock:
        blocked += 1
        publish()
    try:
        while os.path.exists(gate):
            time.sleep(0.05)
    finally:
        with lock:
            blocked -= 1
            publish()


class Stall(Operations):
    def _path(self, path):
        return os.path.join(backing, path.lstrip('/'))

    def getattr(self, path, fh=None):
        wait_while_blocked()
        try:
            st = os.lstat(self._path(path))
        except OSError as e:
            raise FuseOSError(e.errno)
        return {k: getattr(st, k) for k in (
            'st_mode', 'st_nlink', 'st_size', 'st_uid', 'st_gid', 'st_atime', 'st_mtime', 'st_ctime', 'st_ino')}

    def readdir(self, path, fh):
        wait_while_blocked()
        return ['.', '..'] + os.listdir(self._path(path))

    def open(self, path, flags):
        wait_while_blocked()
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise FuseOSError(errno.EROFS)
        return os.open(self._path(path), os.O_RDONLY)

    def read(self, path, size, offset, fh):
        wait_while_blocked()
        os.lseek(fh, offset, 0)
        return os.read(fh, size)

    def release(self, path, fh):
        os.close(fh)
        return 0


publish()
# No kernel caching of attributes or entries: every stat reaches us (and can block), and a change
# in BACKING is visible on the next call, as on a real disk.
FUSE(Stall(), mount, foreground=True, nothreads=False, ro=True, use_ino=True,
     attr_timeout=0, entry_timeout=0, negative_timeout=0, fsname='stallfs')
