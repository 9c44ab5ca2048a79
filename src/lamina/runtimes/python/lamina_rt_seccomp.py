"""A seccomp filter for each environment: the kernel interfaces a function has no business with.

Namespaces, cgroups and an unprivileged uid keep an environment away from other functions' files
and processes, but every system call still reaches the host kernel, and a few of them are where
escapes come from: creating a user namespace (root inside it unlocks mount, netfilter, ...),
io_uring, BPF, the kernel keyring (not namespaced), perf events, userfaultfd, module and kexec
loading.  AWS's Firecracker answers this with a separate kernel; lamina answers it as Docker's
default profile does, by refusing those calls before the kernel acts on them.

It is a deny list (ERRNO, never kill): everything a runtime uses keeps working, and a call that is
refused fails the way it fails on a host that disallows it -- EPERM, or ENOSYS for ``clone3``
(whose flags a filter cannot read, so glibc falls back to ``clone``, whose flags it can) and for
io_uring (libuv, Node's I/O library, then falls back to its thread pool).  ``clone`` and
``unshare`` may not create namespaces; plain threads and processes are untouched.

Installed last, after the environment's mounts and its privilege drop (``PR_SET_NO_NEW_PRIVS``
first, which an unprivileged process needs and which also keeps set-uid binaries from gaining
anything); it is inherited across fork and execve, so extensions, custom runtimes and a
function's subprocesses run under it too.

Runs in the function's interpreter (any supported Python): standard library only.
"""

import ctypes
import errno
import platform
import struct

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000

# classic BPF opcodes (linux/bpf_common.h)
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
BPF_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
OFFSET_NR = 0
OFFSET_ARCH = 4
OFFSET_ARG0_LOW = 16  # little-endian: the low 32 bits of args[0] (every flag clone takes)

CLONE_NAMESPACES = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)

# The calls refused with EPERM, by name (numbers below, per architecture).
DENIED = (
    # namespaces: joining or making them (root in a new user namespace is the classic way in)
    "unshare", "setns",
    # mounting, in any of its forms
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr",
    # the kernel keyring is not namespaced: another environment's keys live in the same one
    "add_key", "request_key", "keyctl",
    # large kernel surfaces no function needs
    "bpf", "perf_event_open", "userfaultfd", "kcmp", "pidfd_getfd", "process_vm_readv",
    "process_vm_writev", "fanotify_init", "open_by_handle_at", "name_to_handle_at", "syslog",
    "lookup_dcookie", "quotactl", "quotactl_fd", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl",
    # the machine's, not a function's
    "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "create_module", "get_kernel_syms", "query_module", "swapon", "swapoff", "acct", "vhangup",
    "clock_settime", "clock_adjtime", "settimeofday", "ioperm", "iopl",
)  # fmt: skip
NOT_IMPLEMENTED = ("clone3", "io_uring_setup", "io_uring_enter", "io_uring_register")

# From the kernel's uapi headers (asm/unistd_64.h; asm-generic/unistd.h for arm64);
# tests/unit/test_seccomp.py checks them against the headers where those are installed.
X86_64 = {
    "acct": 163, "add_key": 248, "bpf": 321, "clock_adjtime": 305, "clock_settime": 227,
    "settimeofday": 164, "delete_module": 176, "finit_module": 313, "init_module": 175,
    "create_module": 174, "get_kernel_syms": 177, "query_module": 178, "ioperm": 173, "iopl": 172,
    "kcmp": 312, "kexec_file_load": 320, "kexec_load": 246, "keyctl": 250, "request_key": 249,
    "lookup_dcookie": 212, "mount": 165, "umount2": 166, "move_mount": 429, "open_tree": 428,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "pivot_root": 155, "open_by_handle_at": 304, "perf_event_open": 298, "process_vm_readv": 310,
    "process_vm_writev": 311, "quotactl": 179, "quotactl_fd": 443, "reboot": 169, "setns": 308,
    "unshare": 272, "swapon": 167, "swapoff": 168, "sysfs": 139, "_sysctl": 156, "uselib": 134,
    "userfaultfd": 323, "ustat": 136, "vhangup": 153, "nfsservctl": 180, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "syslog": 103, "pidfd_getfd": 438, "clone": 56,
    "clone3": 435, "fanotify_init": 300, "name_to_handle_at": 303,
}  # fmt: skip
AARCH64 = {
    "acct": 89, "add_key": 217, "bpf": 280, "clock_adjtime": 266, "clock_settime": 112,
    "settimeofday": 170, "delete_module": 106, "finit_module": 273, "init_module": 105, "kcmp": 272,
    "kexec_file_load": 294, "kexec_load": 104, "keyctl": 219, "request_key": 218,
    "lookup_dcookie": 18, "mount": 40, "umount2": 39, "move_mount": 429, "open_tree": 428,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "pivot_root": 41, "open_by_handle_at": 265, "perf_event_open": 241, "process_vm_readv": 270,
    "process_vm_writev": 271, "quotactl": 60, "quotactl_fd": 443, "reboot": 142, "setns": 268,
    "unshare": 97, "swapon": 224, "swapoff": 225, "userfaultfd": 282, "vhangup": 58,
    "nfsservctl": 42, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "syslog": 116, "pidfd_getfd": 438, "clone": 220, "clone3": 435, "fanotify_init": 262,
    "name_to_handle_at": 264,
}  # fmt: skip
# (machine, AUDIT_ARCH_* of its native ABI, its table, the first number of a foreign ABI sharing
# the arch value: x86_64's x32 calls carry bit 30 and would otherwise slip past the numbers above)
ARCHES = {
    "x86_64": (0xC000003E, X86_64, 0x40000000),
    "aarch64": (0xC00000B7, AARCH64, None),
}


class Unsupported(Exception):
    """No filter for this machine (an architecture without a table here)."""


def _insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


def program(machine=None):
    """The filter as a list of ``struct sock_filter`` (8 bytes each) for ``machine``."""
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise Unsupported(f"no seccomp table for {machine}")
    arch, table, foreign = ARCHES[machine]
    deny = sorted({table[name] for name in DENIED if name in table})
    nosys = sorted({table[name] for name in NOT_IMPLEMENTED if name in table})
    eperm = SECCOMP_RET_ERRNO | errno.EPERM
    enosys = SECCOMP_RET_ERRNO | errno.ENOSYS
    # Layout, each jump relative to the next instruction:
    #   0 ld arch; 1 jeq native ? 2 : ret ENOSYS(last); 2 ld nr; [3 jge foreign -> ENOSYS]
    #   one jeq per denied number -> EPERM; one per ENOSYS number -> ENOSYS;
    #   jeq clone -> (ld arg0; jset namespaces -> EPERM; ret ALLOW); ret ALLOW;
    #   ret EPERM; ret ENOSYS
    body = []
    checks = [(nr, "eperm") for nr in deny] + [(nr, "enosys") for nr in nosys]
    head = 3 + (1 if foreign is not None else 0)
    clone_at = head + len(checks)  # the jeq clone
    # after the jeq clone: ld arg0, jset, ret allow (the clone branch), ret allow (not clone)
    eperm_at = clone_at + 5
    enosys_at = eperm_at + 1

    def jump(frm, to):
        offset = to - frm - 1
        if not 0 <= offset <= 255:
            raise ValueError("seccomp program too long for one jump")
        return offset

    body.append(_insn(BPF_LD_W_ABS, 0, 0, OFFSET_ARCH))
    body.append(_insn(BPF_JEQ_K, 0, jump(1, enosys_at), arch))
    body.append(_insn(BPF_LD_W_ABS, 0, 0, OFFSET_NR))
    if foreign is not None:
        body.append(_insn(BPF_JGE_K, jump(3, enosys_at), 0, foreign))
    for i, (nr, kind) in enumerate(checks):
        at = head + i
        body.append(_insn(BPF_JEQ_K, jump(at, eperm_at if kind == "eperm" else enosys_at), 0, nr))
    # clone: refused only when its flags ask for a namespace
    body.append(_insn(BPF_JEQ_K, 0, jump(clone_at, clone_at + 4), table["clone"]))
    body.append(_insn(BPF_LD_W_ABS, 0, 0, OFFSET_ARG0_LOW))
    body.append(_insn(BPF_JSET_K, jump(clone_at + 2, eperm_at), 0, CLONE_NAMESPACES))
    body.append(_insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    body.append(_insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    body.append(_insn(BPF_RET_K, 0, 0, eperm))
    body.append(_insn(BPF_RET_K, 0, 0, enosys))
    assert len(body) == enosys_at + 1
    return body


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Filter:
    """The program, built once (in the zygote, at import) and installed in each environment."""

    def __init__(self, machine=None):
        insns = program(machine)
        self.raw = ctypes.create_string_buffer(b"".join(insns), len(insns) * 8)
        self.prog = SockFprog(len(insns), ctypes.cast(self.raw, ctypes.c_void_p))

    def install(self, libc):
        """On this process and all it will start.  Raises OSError on failure."""
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "PR_SET_NO_NEW_PRIVS: " + errno.errorcode.get(err, str(err)))
        if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(self.prog), 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "PR_SET_SECCOMP: " + errno.errorcode.get(err, str(err)))


def for_host():
    """This machine's filter, or the reason there is none (an ``Unsupported``)."""
    try:
        return Filter()
    except Unsupported as exc:
        return exc


def install(libc, machine=None):
    Filter(machine).install(libc)
