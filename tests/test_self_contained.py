"""`make test`, `make run` and CI need nothing beside the clone: the files they run or read name no path outside it.

A fresh machine has the repository and nothing else, so a script that reaches for the workplace's tree
(/work/..., ../shared/reference/...) works here and fails there. Relative paths are resolved the way they are
used: against the file's own folder, in the Makefile against the root or the folder a recipe line cd's into, and
`$(dirname "$0")` and variables set from it (ROOT=$(cd "$(dirname "$0")/.." && pwd)) against the script's folder.
"""

import posixpath
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("Makefile", ".ci/run", "scripts/*", "containers/*")
# Paths that only exist on the workplace's machines, whatever they are relative to ("$CACHE"/work/ is no /work/).
WORKPLACE = re.compile(r"(?P<p>\.\./shared\b)|(?P<q>\bshared/reference\b)|(?:^|[\s=:(,-])[\"']?(?P<r>/work/)")
PATH_CHARS = r"[\w.$/{}()\[\]@%+~-]"
PARENT = re.compile(rf"{PATH_CHARS}*(?<![\w.])\.\.(?![\w.]){PATH_CHARS}*")
SCRIPT_FOLDER = re.compile(r'\$\(dirname "?\$(?:0|\{BASH_SOURCE(?:\[0\])?\})"?\)')
FOLDER_VARIABLE = re.compile(r'^\s*(?:local\s+|readonly\s+|export\s+)?(\w+)=\$\(cd "?@(\d+)@([^"&)\s]*)"? && pwd\)')
MAKE_CD = re.compile(r"^\tcd\s+([\w./-]+)\s*&&")
ANCHOR = re.compile(r"@(\d+)@")


def scanned_files() -> list[Path]:
    files = {p for pattern in SCANNED for p in ROOT.glob(pattern) if p.is_file()}
    return sorted(files)


def outside_references(text: str, folder: str = ".", makefile: bool = False) -> list[tuple[int, str]]:
    """(line number, path) for each path in `text` that points outside the repository.

    `folder` is where the file lies, relative to the repository root; in a Makefile, relative paths start at the
    root instead. A `$VAR/..` whose variable is not set from the script's folder is taken relative to `folder`.
    """
    found = set()
    anchors: list[tuple[str, str]] = []  # (folder relative to the root, how the file wrote it)
    variables: dict[str, str] = {}

    def anchor(at: str, written: str) -> str:
        anchors.append((at, written))
        return f"@{len(anchors) - 1}@"

    for number, line in enumerate(text.splitlines(), 1):
        for hit in WORKPLACE.finditer(line):
            found.add((number, _tidy(_token_around(line, hit.start(hit.lastgroup), hit.end(hit.lastgroup)))))
        base = "." if makefile else folder
        if makefile and (cd := MAKE_CD.match(line)):
            base = posixpath.join(base, cd.group(1))
        # Known folders become placeholders: $(dirname "$0"), and variables set from it.
        resolved = SCRIPT_FOLDER.sub(lambda m: anchor(folder, m.group(0)), line)
        for name, value in variables.items():
            resolved = re.sub(rf"\$(?:{name}\b|\{{{name}\}})", lambda m, v=value: anchor(v, m.group(0)), resolved)
        if assignment := FOLDER_VARIABLE.match(resolved):
            name, index, rest = assignment.groups()
            variables[name] = posixpath.normpath(anchors[int(index)][0] + rest)
        for token in PARENT.findall(resolved):
            if _climbs_out(token, base, anchors):
                found.add((number, _tidy(ANCHOR.sub(lambda m: anchors[int(m.group(1))][1], token))))
    return sorted(found)


def _token_around(line: str, start: int, end: int) -> str:
    while start > 0 and re.fullmatch(PATH_CHARS, line[start - 1]):
        start -= 1
    while end < len(line) and re.fullmatch(PATH_CHARS, line[end]):
        end += 1
    return line[start:end]


def _tidy(token: str) -> str:
    """The path without what shell syntax left around it: ${X:-PATH} gives PATH, (PATH) gives PATH."""
    token = token.lstrip("({-")
    while token and token[-1] in ")}" and token.count(token[-1]) > token.count("({"[")}".index(token[-1])]):
        token = token[:-1]
    return token


def _climbs_out(token: str, base: str, anchors: list[tuple[str, str]]) -> bool:
    """Whether a path with `..` components, taken from `base`, leaves the repository root."""
    if placeholder := ANCHOR.search(token):  # anchored at a known folder (maybe as a default: ${X:-@0@/..})
        path = anchors[int(placeholder.group(1))][0] + token[placeholder.end():]
    elif token.lstrip("({-").startswith("/"):
        return False  # a system path (/usr/lib/..): not the repository's business
    elif token.startswith("$"):  # after a variable nobody set from the script's folder: taken from `base`
        path = base + "/" + token.partition("/")[2]
    else:
        path = base + "/" + token
    parts: list[str] = []
    for part in (p.strip("(){}") for p in path.split("/")):
        if part == "..":
            if not parts:
                return True
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return False


@pytest.mark.parametrize("path", scanned_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_make_and_ci_files_name_no_path_outside_the_repository(path: Path) -> None:
    relative = path.relative_to(ROOT)
    found = outside_references(path.read_text(errors="replace"), relative.parent.as_posix(),
                               makefile=relative.name == "Makefile")
    assert not found, "\n".join(f"{relative}:{line}: {p!r} lies outside the repository" for line, p in found)


def test_the_scan_covers_the_makefile_ci_and_scripts() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in scanned_files()}
    assert {"Makefile", ".ci/run", "scripts/apptainer-up.sh", "containers/singularity-compose.yml"} <= names


# What scripts/apptainer-up.sh did before it had an installer of its own: run the workplace's recipe.
OLD_APPTAINER_UP = """\
# workplace's recipe (../shared/reference/install-apptainer.sh), keeping the
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RECIPE=${APPTAINER_RECIPE:-$ROOT/../shared/reference/install-apptainer.sh}
"""


def test_the_detector_catches_the_old_outside_recipe() -> None:
    found = outside_references(OLD_APPTAINER_UP, "scripts")
    assert (3, "$ROOT/../shared/reference/install-apptainer.sh") in found
    assert 1 in {line for line, _ in found}
    assert 2 not in {line for line, _ in found}


@pytest.mark.parametrize(("text", "folder", "makefile"), [
    ('ROOT=$(cd "$(dirname "$0")/.." && pwd)\nsource "$ROOT/../elsewhere/env.sh"\n', "scripts", False),
    ('here=$(cd "$(dirname "$0")" && pwd)\nbash "$here/../../install.sh"\n', "scripts", False),
    ('bash "$(dirname "$0")/../../install.sh"\n', ".ci", False),
    ("services:\n  image: ../../images/x.sif\n", "containers", False),
    ("x:\n\tcd containers && ../../venv/bin/compose up\n", ".", True),
    ("x:\n\tbash ../tools/up.sh\n", ".", True),
    ("x:\n\tcat /work/shared/CLUSTER.md\n", ".", True),
    ('RECIPE="/work/shared/reference/x.sh"\n', "scripts", False),
    ("x:\n\tbash $(RECIPES)/../shared/install.sh\n", ".", True),
])
def test_the_detector_catches_paths_above_the_root(text: str, folder: str, makefile: bool) -> None:
    assert outside_references(text, folder, makefile) != []


@pytest.mark.parametrize(("text", "folder", "makefile"), [
    ('cd "$(dirname "$0")/.."\nmake test\n', ".ci", False),
    ('ROOT=$(cd "$(dirname "$0")/.." && pwd)\ncat "$ROOT/README.md"\n', "scripts", False),
    ('here=$(cd "$(dirname "$0")" && pwd)\npython3 "$here/../scripts/rebind_c23.py"\n', "scripts", False),
    ("services:\n  image: ../images/optbench-cpu.sif\n  volumes:\n    - ../results:/results\n", "containers", False),
    ("x:\n\tcd containers && ../$(VENV)/bin/singularity-compose up\n", ".", True),
    ("# sscanf, ... and python3 ... are no paths\nls /usr/lib/../lib\n", "scripts", False),
    ('cp "$CACHE"/work/apptainer_*.deb "$CACHE"/\n', "scripts", False),
])
def test_the_detector_leaves_paths_inside_the_repository_alone(text: str, folder: str, makefile: bool) -> None:
    assert outside_references(text, folder, makefile) == []
