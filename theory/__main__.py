"""``python -m theory``: run every claim check and write the report."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the claim checks; return the process exit status."""
    print("theory: no claims registered yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
