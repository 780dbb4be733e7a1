"""The memory gauge of every process the farm reports on (driver, runners, learners)."""
from __future__ import annotations

KIB = 1024
"""/proc/self/status counts in kB, which are KiB."""


def rss_mb() -> float:
    """Resident memory of this process without shared memory, in MB (10^6 bytes):
    RssAnon + RssFile from /proc/self/status (Linux); NaN where that cannot be read.

    Shared memory is left out because the object store is shared memory mapped into every
    Ray worker: reading fragments touches its pages, which plain RSS (VmRSS) counts up to
    the store's size. Without it the gauge is about this process's own memory, the one a
    leak would grow.
    """
    fields: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(("RssAnon:", "RssFile:")):
                    name, value, _unit = line.split()
                    fields[name] = int(value)
        return (fields["RssAnon:"] + fields["RssFile:"]) * KIB / 1e6
    except (OSError, KeyError, ValueError):
        return float("nan")
