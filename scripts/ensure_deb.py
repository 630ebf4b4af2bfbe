#!/usr/bin/env python3
"""Make sure the named Debian packages are installed.

As root, missing packages are installed with apt-get (after one ``apt-get update``);
otherwise the exact install line is printed and the script exits non-zero.
"""

import os
import shutil
import subprocess
import sys


def missing(packages: list[str]) -> list[str]:
    """Packages dpkg does not report as installed."""
    out = []
    for name in packages:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name],
                           capture_output=True, text=True)
        if r.returncode != 0 or "install ok installed" not in r.stdout:
            out.append(name)
    return out


def main(packages: list[str]) -> int:
    if not shutil.which("dpkg-query"):
        print("not a Debian system: install the equivalents of: " + " ".join(packages))
        return 0
    todo = missing(packages)
    if not todo:
        return 0
    line = "apt-get install -y --no-install-recommends " + " ".join(todo)
    if os.geteuid() != 0:
        print(f"missing Debian packages; run as root:\n  apt-get update && {line}", file=sys.stderr)
        return 1
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"installing Debian packages: {' '.join(todo)}", flush=True)
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(line.split(), check=True, env=env, stdout=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
