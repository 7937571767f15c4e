"""`make bench`: run every bench/bench_*.py and rewrite their sections of
docs/BENCHMARKS.md.

    .venv/bin/python bench/run_benchmarks.py [--only bench_load.py] [--doc PATH]

A bench that prints marked sections (bench/sections.py) has them put in place of the
old ones. bench_render.py and bench_viewer.py rewrite their own sections ("## Images",
"## Viewer") and are only run. Any other bench's printed output becomes the section
``run:<name>``, headed with the machine, the date and the command that reproduces it.
Stops at the first bench that fails (its section is left as it was).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sections import replace_sections, section, sections  # noqa: E402

WRITE_THEMSELVES = {"bench_render.py", "bench_viewer.py"}
ARGS: dict[str, list[str]] = {}


def machine() -> str:
    return (f"{platform.machine()}, {platform.node() or 'this machine'}, Python "
            f"{platform.python_version()}")


def fallback(name: str, command: str, output: str, today: str) -> str:
    """The section for a bench that printed no marked section of its own."""
    body = (f"### Latest `make bench` run: {name}\n\nMeasured {today} on {machine()}. "
            f"Reproduce: `{command}`\n\n```text\n{output.strip()}\n```")
    return section(f"run:{name}", body)


def update(doc: Path, name: str, command: str, output: str, today: str | None = None) -> list[str]:
    """Rewrite ``doc`` with the sections of one bench's ``output``; return their names."""
    today = today or date.today().isoformat()
    if not sections(output):
        output = fallback(name, command, output, today)
    text, names = replace_sections(doc.read_text(), output)
    doc.write_text(text)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="run only this bench (repeatable)")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    benches = sorted(p for p in (ROOT / "bench").glob("bench_*.py")
                     if not args.only or p.name in args.only)
    for path in benches:
        extra = ARGS.get(path.name, [])
        command = " ".join([".venv/bin/python", f"bench/{path.name}", *extra])
        print(f"== {command}", flush=True)
        done = subprocess.run([sys.executable, str(path), *extra], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE)
        sys.stdout.write(done.stdout)
        if done.returncode:
            sys.exit(f"{path.name} failed (exit {done.returncode}); "
                     f"{args.doc.name} keeps its old section")
        if path.name not in WRITE_THEMSELVES:
            names = update(args.doc, path.name, command, done.stdout)
            print(f"   rewrote {', '.join(names)} in {args.doc.name}")


if __name__ == "__main__":
    main()
