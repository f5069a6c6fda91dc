#!/usr/bin/env python3
"""Instructions per request from two callgrind runs of the same binary.

  callgrind_report.py NAME REQUESTS MEASURED.out IDLE.out [TOP]

MEASURED ran the warm-up and then REQUESTS requests; IDLE ran the same warm-up
and then stayed idle for as long. Their difference is what the REQUESTS
requests cost: start-up, configuration, warm-up and timers cancel out. Prints
the figure and the functions with the largest difference, inclusive (the
function and everything it calls) and self (its own instructions), both per
request, from `callgrind_annotate`.
"""

import re
import subprocess
import sys

LINE = re.compile(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(?:\*\s+)?(\S.*?)\s*$")


def total_ir(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise SystemExit("no summary line in " + path)


def per_function(path, inclusive):
    out = subprocess.run(
        [
            "callgrind_annotate",
            "--inclusive=" + ("yes" if inclusive else "no"),
            "--threshold=100",
            path,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    costs = {}
    started = False
    for line in out.splitlines():
        if not started:
            # The function table follows the "Ir  file:function" header.
            if re.match(r"^\s*Ir\s+file:function", line):
                started = True
            continue
        m = LINE.match(line)
        if not m or m.group(2).startswith("-"):
            continue
        name = re.sub(r"\s+\[[^\]]*\]$", "", m.group(2))
        name = re.sub(r"^\S*?:(?=[^:])", "", name, count=1) if name.startswith("???:") else name
        costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def short(name, width=110):
    # Rust symbols carry their hash suffix; generic arguments make them long.
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    return name if len(name) <= width else name[: width - 1] + "…"


def main():
    if len(sys.argv) < 5:
        raise SystemExit(__doc__)
    name, n, measured, idle = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    top = int(sys.argv[5]) if len(sys.argv) > 5 else 25
    m_ir, i_ir = total_ir(measured), total_ir(idle)
    per_req = (m_ir - i_ir) / n
    print(f"## {name}: {per_req:,.0f} instructions per request")
    print()
    print(f"measured run {m_ir:,} Ir, idle run {i_ir:,} Ir, {n:,} requests")
    for inclusive in (True, False):
        mc, ic = per_function(measured, inclusive), per_function(idle, inclusive)
        diff = {k: (v - ic.get(k, 0)) / n for k, v in mc.items()}
        rows = sorted(diff.items(), key=lambda kv: -kv[1])[:top]
        print()
        print(f"### {name}: top functions, {'inclusive' if inclusive else 'self'} Ir per request")
        print()
        print("| Ir/req | % | function |")
        print("| ---: | ---: | --- |")
        for k, v in rows:
            print(f"| {v:,.0f} | {100 * v / per_req:.1f} | `{short(k)}` |")


if __name__ == "__main__":
    main()
