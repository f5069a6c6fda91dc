#!/usr/bin/env python3
"""Adds N generated routes to a gateway config, for the route-count lever of
bench/run.sh (target `weir-routes10k`): BENCH.md asks that the cost stays flat
up to 10,000 routes. The routes mix prefixes, templates, exact paths and
hosts, like a large real table; none matches the bench path `/bench/hello`,
so the measured request still takes the `bench` route, now among N others.

Usage: gen_routes.py N CONFIG_FILE   (edits the file in place)
"""

import sys


def route(i):
    kind = i % 4
    if kind == 0:
        m = f"{{ path_prefix: /svc{i}/items, methods: [GET, POST] }}"
    elif kind == 1:
        m = f'{{ path_template: "/svc{i}/{{id}}/detail", methods: [GET] }}'
    elif kind == 2:
        m = f"{{ path: /svc{i}/health }}"
    else:
        m = f"{{ host: tenant{i}.example.com, path_prefix: /api }}"
    return f"  - name: gen-{i}\n    match: {m}\n    upstream: catalog\n"


def main():
    n, path = int(sys.argv[1]), sys.argv[2]
    lines = open(path).read().splitlines(keepends=True)
    at = lines.index("routes:\n") + 1
    lines[at:at] = [route(i) for i in range(n)]
    open(path, "w").write("".join(lines))


if __name__ == "__main__":
    main()
