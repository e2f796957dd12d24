"""Write the course repository's URL into the README's Colab badges and the notebooks' setup cell.

    python notebooks/set_repo_url.py https://github.com/<account>/<repository>   # set it, then write it
    python notebooks/set_repo_url.py            # write the URL that course.cfg holds (after editing it)
    python notebooks/set_repo_url.py --check    # exit 1 if a file does not hold course.cfg's URL

The one place the URL is kept is the ``repo_url = ...`` line of ``course.cfg`` at the repository
root. This script copies it into

* README.md: the "Open in Colab" badge links (colab.research.google.com/github/<account>/<repository>/...)
  and the ``git clone <URL> && cd <repository>`` command;
* notebooks/*.py and notebooks/*.ipynb: the ``REPO_URL = "..."`` line of the setup cell, which
  Colab uses to clone the repository (both files of each jupytext pair, so they stay in sync;
  the .ipynb keeps its outputs and cell ids).

Commit and push the changed files: Colab opens the notebooks from GitHub.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "course.cfg"
BRANCH = "main"  # the branch the Colab badges open
PLACEHOLDER = "https://github.com/OWNER/cifar10-course"

_GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)/([A-Za-z0-9._-]+?)(?:\.git)?/?$")
_SETTING = re.compile(r"^(repo_url\s*=\s*)(\S*)\s*$", re.MULTILINE)
_BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^/\s)]+/[^/\s)]+/blob/[^/\s)]+/notebooks/")
_CLONE = re.compile(r"git clone https://github\.com/[^\s/]+/[^\s/]+?(?:\.git)?(?=\s|$)( && cd \S+)?", re.MULTILINE)
_CELL_LINE = re.compile(r'^REPO_URL = "[^"\n]*"', re.MULTILINE)


def parse_github_url(url: str) -> tuple[str, str]:
    """(account, repository) of https://github.com/<account>/<repository>[.git]; ValueError otherwise."""
    match = _GITHUB.match(url.strip())
    if not match:
        raise ValueError(f"{url!r} is not a GitHub repository URL like https://github.com/<account>/<repository> "
                         f"(Colab opens notebooks from GitHub only)")
    return match.group(1), match.group(2)


def read_url(config: Path | None = None) -> str:
    """The repo_url setting of course.cfg."""
    config = config or CONFIG
    match = _SETTING.search(config.read_text(encoding="utf-8"))
    if not match:
        raise ValueError(f"{config} has no 'repo_url = https://github.com/<account>/<repository>' line")
    return match.group(2)


def write_url(url: str, config: Path | None = None) -> None:
    """Set the repo_url line of course.cfg (created if missing)."""
    config = config or CONFIG
    line = f"repo_url = {url}"
    if config.is_file() and _SETTING.search(config.read_text(encoding="utf-8")):
        config.write_text(_SETTING.sub(lambda m: line, config.read_text(encoding="utf-8"), count=1), encoding="utf-8")
    else:
        config.write_text(line + "\n", encoding="utf-8")


def canonical(url: str) -> str:
    account, repository = parse_github_url(url)
    return f"https://github.com/{account}/{repository}"


def updated_readme(text: str, url: str) -> str:
    account, repository = parse_github_url(url)
    text = _BADGE.sub(f"https://colab.research.google.com/github/{account}/{repository}/blob/{BRANCH}/notebooks/", text)
    return _CLONE.sub(lambda m: f"git clone {url}" + (f" && cd {repository}" if m.group(1) else ""), text)


def updated_cell_source(source: str, url: str) -> str:
    return _CELL_LINE.sub(lambda m: f'REPO_URL = "{url}"', source)


def targets(root: Path | None = None) -> list[Path]:
    """The files that hold the URL: README.md and both files of every notebook pair."""
    root = root or ROOT
    notebooks = sorted((root / "notebooks").glob("*.ipynb"))
    return [root / "README.md"] + [p for nb in notebooks for p in (nb.with_suffix(".py"), nb)]


def new_text(path: Path, url: str) -> str:
    """The content ``path`` should have to hold ``url``."""
    text = path.read_text(encoding="utf-8")
    if path.name == "README.md":
        return updated_readme(text, url)
    if path.suffix == ".py":
        return updated_cell_source(text, url)
    nb = nbformat.reads(text, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = updated_cell_source(cell.source, url)
    return nbformat.writes(nb) + "\n"


def sync(url: str, root: Path | None = None, check: bool = False) -> list[Path]:
    """Write ``url`` into every target (or with ``check``, only list those that differ); returns them."""
    url = canonical(url)
    changed = []
    for path in targets(root):
        text = new_text(path, url)
        if text != path.read_text(encoding="utf-8"):
            changed.append(path)
            if not check:
                path.write_text(text, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", nargs="?", help="https://github.com/<account>/<repository> (default: course.cfg's)")
    p.add_argument("--check", action="store_true", help="only check that every file holds course.cfg's URL")
    args = p.parse_args(argv)
    try:
        if args.url and not args.check:
            write_url(canonical(args.url))
            print(f"{CONFIG.relative_to(ROOT)}: repo_url = {canonical(args.url)}")
        url = read_url()
        changed = sync(url, check=args.check)
    except ValueError as e:
        p.error(str(e))
    names = ", ".join(str(path.relative_to(ROOT)) for path in changed)
    if args.check:
        if changed:
            print(f"not holding {url}: {names}; run python notebooks/set_repo_url.py", file=sys.stderr)
            return 1
        print(f"every file holds {url}")
    else:
        print(f"wrote {url} into {names}" if changed else f"every file already holds {url}")
    if canonical(url) == PLACEHOLDER:
        print("note: this is the placeholder; Colab cannot clone it", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
