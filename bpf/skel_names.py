#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Generate sockmesh.bpf.names.h from the bpftool skeleton: X-macro lists of
the object's maps and programs, so libsockmesh's pin-name tables follow the
BPF object instead of being written by hand. Global-data maps (.rodata,
.bss, .data, .kconfig) are not listed: they are internal to the object;
nor are program arrays named *_calls (the tap's: never pinned, so the
kernel empties them when the tap's process, their last user, ends).
"""
import re
import sys

skel = open(sys.argv[1], encoding="utf-8").read()


def members(kind, block):
    m = re.search(r"struct \{\n((?:\t\tstruct %s \*\w+;\n)+)\t\} %s;" % (kind, block), skel)
    if not m:
        sys.exit("skel_names: no '%s' block in %s" % (block, sys.argv[1]))
    return re.findall(r"\*(\w+);", m.group(1))


maps = [m for m in members("bpf_map", "maps")
        if m not in ("rodata", "bss", "data", "kconfig") and not m.endswith("_calls")]
progs = members("bpf_program", "progs")
out = ["/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */",
       "/* Generated from %s by bpf/skel_names.py: do not edit. */" % sys.argv[1].split("/")[-1],
       "#ifndef SOCKMESH_BPF_NAMES_H", "#define SOCKMESH_BPF_NAMES_H",
       "#define SM_BPF_MAPS(X) " + " ".join("X(%s)" % m for m in maps),
       "#define SM_BPF_PROGS(X) " + " ".join("X(%s)" % p for p in progs),
       "#endif", ""]
sys.stdout.write("\n".join(out))
