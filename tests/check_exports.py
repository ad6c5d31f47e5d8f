#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check_exports.py HEADER LIBRARY [MAP]: the functions libufpager.so
exports (nm -D --defined-only) must be exactly the functions
include/ufpager.h declares with UFP_API, and the version script must list
the same set. Prints what drifted and exits 1; exit 0 when they agree."""
import re
import subprocess
import sys


def header_functions(path):
    text = re.sub(r"/\*.*?\*/", " ", open(path).read(), flags=re.S)
    text = re.sub(r"#define[^\n]*(\\\n[^\n]*)*", " ", text)
    return set(re.findall(r"\bUFP_API\b[^;{(]*?\b(\w+)\s*\(", text))


def library_functions(path):
    out = subprocess.run(["nm", "-D", "--defined-only", path], check=True,
                         capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "TtWiDBR":
            syms.add(parts[2].split("@")[0])
    return syms


def map_functions(path):
    text = re.sub(r"/\*.*?\*/", " ", open(path).read(), flags=re.S)
    names = set()
    for glob in re.findall(r"global:(.*?)(?:local:|})", text, flags=re.S):
        names |= set(re.findall(r"(\w+)\s*;", glob))   # every version node
    return names


def differ(want, have, where):
    """Print each name in one set only; 1 if any."""
    for name in sorted(want - have):
        print("declared in the header, not %s: %s" % (where, name))
    for name in sorted(have - want):
        print("%s, not declared in the header: %s" % (where, name))
    return 1 if want != have else 0


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    want = header_functions(sys.argv[1])
    have = library_functions(sys.argv[2])
    if not want:
        print("no UFP_API function found in", sys.argv[1])
        return 1
    bad = differ(want, have, "exported by the library")
    if len(sys.argv) > 3:
        bad |= differ(want, map_functions(sys.argv[3]), "listed in the version script")
    if not bad:
        print("%d functions: header, library and version script agree" % len(want))
    return bad


if __name__ == "__main__":
    sys.exit(main())
