"""The OHIF viewer's files: where they live, how they are fetched, what to do when they are missing.

pacscore serves OHIF (``pacscore serve web --viewer``, docs/viewer.md) but never ships it: the
viewer is a few hundred MB of JavaScript with its own licence and release cycle. Its built
``dist/`` folder comes from the npm registry at set-up, pinned to one version that this
release's tests ran against (``npm pack @ohif/app@VERSION``; npm checks the tarball's
integrity), and is unpacked into a per-user cache folder::

    pacscore viewer install      # needs npm (Debian: apt-get install npm; or `make viewer`)
    pacscore viewer path         # where it is, or what to run when it is not there

``PACSCORE_VIEWER_DIR`` overrides the folder (the one holding OHIF's index.html).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .errors import PacsError

__all__ = [
    "OHIF_PACKAGE",
    "OHIF_VERSION",
    "ViewerError",
    "ViewerMissing",
    "default_viewer_dir",
    "find_viewer",
    "install_viewer",
    "add_viewer_cli",
]

#: the npm package that ships OHIF's built viewer, and the version pacscore is tested with
OHIF_PACKAGE = "@ohif/app"
OHIF_VERSION = "3.13.2"
#: written beside index.html once a viewer is completely unpacked: "<package>@<version>"
MARKER = ".pacscore-viewer"
INSTALL_HINT = "pacscore viewer install"


class ViewerError(RuntimeError, PacsError):
    """The viewer could not be fetched or unpacked."""


class ViewerMissing(FileNotFoundError, PacsError):
    """No viewer where one was looked for; the message names the command that fetches it."""


def default_viewer_dir() -> Path:
    """``$PACSCORE_VIEWER_DIR``, else ``$XDG_CACHE_HOME/pacscore/ohif-VERSION`` (~/.cache by default).

    The version is part of the default folder, so a pacscore upgrade that pins another OHIF
    finds the old folder absent and says to run the install again."""
    explicit = os.environ.get("PACSCORE_VIEWER_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "pacscore" / f"ohif-{OHIF_VERSION}"


def find_viewer(path: str | os.PathLike | None = None) -> Path:
    """The folder holding a viewer (its index.html), or ViewerMissing naming what to run.

    >>> find_viewer("/nowhere")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ViewerMissing: no OHIF viewer in /nowhere: run `pacscore viewer install` ...
    """
    folder = Path(path).expanduser() if path is not None else default_viewer_dir()
    if (folder / "index.html").is_file():
        return folder
    hint = INSTALL_HINT if path is None else f"{INSTALL_HINT} --dir {folder}"
    raise ViewerMissing(
        f"no OHIF viewer in {folder}: run `{hint}` (it fetches {OHIF_PACKAGE}@{OHIF_VERSION} with npm; "
        "on Debian `apt-get install npm` first, or `make viewer` does both)"
    )


def install_viewer(dest: str | os.PathLike | None = None, *, npm: str = "npm", force: bool = False) -> Path:
    """Fetch the pinned OHIF build with ``npm pack`` and unpack its ``dist/`` into ``dest``.

    Unpacked into a temporary sibling folder and renamed into place at the end, so an
    interrupted install never leaves a half viewer that looks complete. Returns the folder.
    Already installed (marker of the same version): nothing is fetched, unless ``force``. A
    folder that exists, is not empty and holds no earlier install is never replaced."""
    folder = Path(dest).expanduser() if dest is not None else default_viewer_dir()
    wanted = f"{OHIF_PACKAGE}@{OHIF_VERSION}"
    marker = folder / MARKER
    if not force and marker.is_file() and marker.read_text().strip() == wanted:
        return folder
    if folder.exists() and not marker.is_file() and (not folder.is_dir() or any(folder.iterdir())):
        # replacing it would delete someone's files (a --dir or PACSCORE_VIEWER_DIR typo)
        raise ViewerError(
            f"{folder} exists and is not a viewer this command installed (no {MARKER} in it): "
            "choose an empty or new folder, or remove that one yourself"
        )
    npm_path = shutil.which(npm)
    if npm_path is None:
        raise ViewerError(
            f"npm not found (looked for {npm!r}): install Node.js's npm (Debian: apt-get install npm), "
            f"then run `{INSTALL_HINT}` again"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pacscore-viewer-", dir=folder.parent) as work:
        tarball = _npm_pack(npm_path, wanted, Path(work))
        staged = Path(work) / "dist"
        _extract_dist(tarball, staged)
        (staged / MARKER).write_text(wanted + "\n")
        if folder.exists():
            old = Path(work) / "old"
            folder.rename(old)  # removed with the temporary folder
        staged.rename(folder)
    return folder


def _npm_pack(npm: str, spec: str, work: Path) -> Path:
    cmd = [npm, "pack", spec, "--pack-destination", str(work), "--silent"]
    try:
        done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=1800, check=False)
    except subprocess.TimeoutExpired:
        raise ViewerError(f"`{' '.join(cmd[:3])}` did not finish in 30 minutes") from None
    if done.returncode != 0:
        raise ViewerError(f"`npm pack {spec}` failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    tarballs = sorted(work.glob("*.tgz"))
    if len(tarballs) != 1:
        raise ViewerError(f"`npm pack {spec}` left {len(tarballs)} tarballs in {work}, expected one")
    return tarballs[0]


def _extract_dist(tarball: Path, dest: Path) -> None:
    """Unpack ``package/dist/**`` of an npm tarball into ``dest``; the tar filter "data" refuses
    absolute paths, links out of the folder and device files."""
    prefix = "package/dist/"
    with tarfile.open(tarball, "r:gz") as tar:
        members = []
        for member in tar.getmembers():
            if member.name.startswith(prefix) and len(member.name) > len(prefix):
                member.name = member.name[len(prefix) :]
                members.append(member)
        if not any(m.name == "index.html" for m in members):
            raise ViewerError(f"{tarball.name} has no package/dist/index.html: not a built OHIF viewer")
        dest.mkdir(parents=True)
        try:
            tar.extractall(dest, members=members, filter="data")
        except tarfile.FilterError as exc:
            raise ViewerError(f"{tarball.name}: refusing to unpack an unsafe member: {exc}") from None


# -- the `pacscore viewer` command ------------------------------------------------------------
def add_viewer_cli(sub) -> None:
    """Register ``pacscore viewer install|path`` on an argparse subparsers object."""
    p = sub.add_parser(
        "viewer",
        help="fetch or locate the OHIF viewer that `serve web --viewer` serves",
        description=f"The OHIF viewer ({OHIF_PACKAGE}@{OHIF_VERSION}) is fetched with npm into a per-user "
        "cache folder ($PACSCORE_VIEWER_DIR overrides it).",
    )
    action = p.add_subparsers(dest="action", required=True)
    install = action.add_parser("install", help=f"fetch {OHIF_PACKAGE}@{OHIF_VERSION} with `npm pack`")
    install.add_argument("--dir", default=None, help="where to unpack it (default: `pacscore viewer path`)")
    install.add_argument("--npm", default="npm", help="the npm command (default: npm)")
    install.add_argument("--force", action="store_true", help="fetch again even if installed")
    install.set_defaults(func=_cmd_install)
    path = action.add_parser("path", help="print the viewer's folder (exit 1 when it is not installed)")
    path.set_defaults(func=_cmd_path)


def _cmd_install(args) -> int:
    try:
        folder = install_viewer(args.dir, npm=args.npm, force=args.force)
    except ViewerError as exc:
        print(f"pacscore viewer install: {exc}", file=sys.stderr)
        return 1
    print(folder)
    return 0


def _cmd_path(args) -> int:
    try:
        print(find_viewer())
    except ViewerMissing as exc:
        print(f"pacscore viewer path: {exc}", file=sys.stderr)
        return 1
    return 0
