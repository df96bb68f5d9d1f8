#!/usr/bin/env python3
"""Runs a command under the system-call filter a systemd unit declares, for the packaging
test: systemd is not PID 1 here, so the unit cannot be started, but its filter can be
built the way systemd builds it and loaded with libseccomp before the command starts.

    unit_seccomp.py UNIT_FILE [--also-deny @GROUP] -- COMMAND [ARG...]

Enforced, as systemd 252 does, in stacked seccomp filters:
  * SystemCallFilter= (an allow list, then ~ lines taking groups out of it; the groups
    are expanded with `systemd-analyze syscall-filter` of this machine's systemd), with
    SystemCallErrorNumber= for everything else; systemd's always-allowed calls added;
  * RestrictAddressFamilies= (socket() of another family fails with EAFNOSUPPORT);
  * MemoryDenyWriteExecute=yes (no writable and executable mapping, nothing made
    executable later: EPERM);
  * RestrictNamespaces=yes (setns, and unshare and clone with a namespace flag: EPERM;
    clone3, whose flags a filter cannot read: ENOSYS, so that libc falls back to clone).
--also-deny takes one more group out, for a control that shows the filter is loaded.
Run it as the unit's user with its capabilities (setpriv): the filter sets no_new_privs.
"""
import ctypes
import errno
import os
import socket
import subprocess
import sys

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ, SCMP_CMP_LT, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ = 4, 2, 6, 7
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
# The namespace flags of clone and unshare (CLONE_NEWNS ... CLONE_NEWTIME).
NAMESPACE_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000,
                   0x20000000, 0x40000000, 0x00000080]
# systemd permits these whatever the list says (systemd.exec(5), SystemCallFilter=).
ALWAYS_ALLOWED = ["execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn"]


def scmp_act_errno(code):
    return 0x00050000 | (code & 0xFFFF)


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def groups():
    """Every group of this systemd, name -> its members (calls and nested groups)."""
    text = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"],
                          check=True, capture_output=True, text=True).stdout
    table, current = {}, None
    for line in text.splitlines():
        if line.startswith("@"):
            current = table.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return table


def expand(name, table, seen=None):
    seen = set() if seen is None else seen
    if not name.startswith("@"):
        return {name}
    if name not in table:
        sys.exit(f"unit_seccomp.py: systemd knows no system call group {name}")
    if name in seen:
        return set()
    seen.add(name)
    calls = set()
    for member in table[name]:
        calls |= expand(member, table, seen)
    return calls


def unit_settings(path):
    """The [Service] lines this script enforces, in order."""
    wanted = ("SystemCallFilter=", "SystemCallErrorNumber=", "RestrictAddressFamilies=",
              "MemoryDenyWriteExecute=", "RestrictNamespaces=")
    with open(path) as unit:
        return [line.strip() for line in unit
                if line.strip().startswith(wanted)]


def allowed_calls(settings, extra_deny, table):
    allowed = None
    for line in settings:
        key, value = line.split("=", 1)
        if key != "SystemCallFilter" or not value:
            continue
        deny = value.startswith("~")
        names = value.lstrip("~").split()
        calls = set().union(*(expand(n, table) for n in names))
        if deny:
            if allowed is None:
                sys.exit("unit_seccomp.py: a deny-only SystemCallFilter is not handled")
            allowed -= calls
        else:
            allowed = calls if allowed is None else allowed | calls
    if allowed is None:
        sys.exit("unit_seccomp.py: the unit has no SystemCallFilter allow list")
    for name in extra_deny:
        allowed -= expand(name, table)
    return allowed | set(ALWAYS_ALLOWED)


def error_number(settings):
    for line in settings:
        key, value = line.split("=", 1)
        if key == "SystemCallErrorNumber":
            return getattr(errno, value)
    return None


def families(settings):
    for line in settings:
        key, value = line.split("=", 1)
        if key == "RestrictAddressFamilies":
            return sorted(getattr(socket, name) for name in value.split())
    return None


def enabled(settings, key):
    return any(line == f"{key}=yes" for line in settings)


def load_rules(lib, rules):
    """One filter, allowing by default: (call, action, [(arg, op, a, b)]) refused."""
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    for name, action, cmps in rules:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            continue
        array = (ArgCmp * max(len(cmps), 1))(*[ArgCmp(*c) for c in cmps])
        if lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), array) != 0:
            sys.exit(f"unit_seccomp.py: cannot add the rule for {name}")
    if lib.seccomp_load(ctx) != 0:
        sys.exit("unit_seccomp.py: seccomp_load failed")


def memory_rules():
    eperm = scmp_act_errno(errno.EPERM)
    both = PROT_WRITE | PROT_EXEC
    return [("mmap", eperm, [(2, SCMP_CMP_MASKED_EQ, both, both)]),
            ("mprotect", eperm, [(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)]),
            ("pkey_mprotect", eperm, [(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)]),
            ("shmat", eperm, [(2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC)])]


def namespace_rules():
    eperm = scmp_act_errno(errno.EPERM)
    rules = [("setns", eperm, []), ("clone3", scmp_act_errno(errno.ENOSYS), [])]
    for flag in NAMESPACE_FLAGS:
        rules.append(("unshare", eperm, [(0, SCMP_CMP_MASKED_EQ, flag, flag)]))
        rules.append(("clone", eperm, [(0, SCMP_CMP_MASKED_EQ, flag, flag)]))
    return rules


def load_call_filter(lib, calls, code):
    ctx = lib.seccomp_init(scmp_act_errno(code))
    for name in sorted(calls):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:  # not a call of this architecture
            continue
        if lib.seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 0, None) != 0:
            sys.exit(f"unit_seccomp.py: cannot allow {name}")
    if lib.seccomp_load(ctx) != 0:
        sys.exit("unit_seccomp.py: seccomp_load failed")


def load_family_filter(lib, allowed):
    """socket() of a family outside `allowed` fails with EAFNOSUPPORT, as systemd does."""
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    nr = lib.seccomp_syscall_resolve_name(b"socket")
    refuse = scmp_act_errno(errno.EAFNOSUPPORT)
    rules = [(SCMP_CMP_LT, allowed[0]), (SCMP_CMP_GT, allowed[-1])]
    rules += [(SCMP_CMP_EQ, f) for f in range(allowed[0], allowed[-1]) if f not in allowed]
    for op, family in rules:
        cmp = ArgCmp(0, op, family, 0)
        if lib.seccomp_rule_add_array(ctx, refuse, nr, 1, ctypes.byref(cmp)) != 0:
            sys.exit(f"unit_seccomp.py: cannot add the address family rule {op} {family}")
    if lib.seccomp_load(ctx) != 0:
        sys.exit("unit_seccomp.py: seccomp_load failed")


def main(argv):
    if "--" not in argv or argv.index("--") < 1:
        sys.exit(__doc__)
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    unit, extra_deny = options[0], []
    rest = options[1:]
    while rest:
        if rest[0] == "--also-deny" and len(rest) > 1:
            extra_deny.append(rest[1])
            rest = rest[2:]
        else:
            sys.exit(__doc__)
    settings = unit_settings(unit)
    table = groups()
    calls = allowed_calls(settings, extra_deny, table)
    code = error_number(settings)
    if code is None:
        sys.exit("unit_seccomp.py: the unit has no SystemCallErrorNumber (systemd would kill)")
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.c_void_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    allowed_families = families(settings)
    if allowed_families:
        load_family_filter(lib, allowed_families)
    if enabled(settings, "MemoryDenyWriteExecute"):
        load_rules(lib, memory_rules())
    if enabled(settings, "RestrictNamespaces"):
        load_rules(lib, namespace_rules())
    load_call_filter(lib, calls, code)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
