"""The READMEs keep their promises: every repository path they name exists on a clone, and
every ``scaling ...`` command they show parses (and, where it can without doing the work,
validates its config or dry-runs its sweep).

Paths and commands are extracted from fenced code blocks, inline code spans and table cells of
``README.md`` and ``sweeps/README.md``; commands there are run from the repository root, so a
path with a ``/`` in it resolves against the root. A bare name (``quickstart.yaml``, ``data/``)
resolves against the folder it is listed under: the markdown file's own folder, or the folder a
layout bullet (``- `scaling/`: ... `train.py` ...``) is about. Placeholders and the outputs the
commands write are skipped by the small explicit rules below; anything else must exist.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from scaling.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "sweeps/README.md", "CONTRIBUTING.md")

# --- what is not a repository path ----------------------------------------------------------

# Words the reader replaces: CONFIG.yaml, SWEEP.yaml, DIR/result.json, STORAGE/NAME, RESULTS_DIR,
# http://HEAD:8265, s3://BUCKET/... A path component whose stem is one of these is a placeholder.
PLACEHOLDER_WORDS = frozenset({"CONFIG", "SWEEP", "DIR", "STORAGE", "NAME", "RESULTS_DIR", "HEAD", "BUCKET"})

# (prefix, why it is not a file in the clone)
SKIPPED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("runs/", "outputs the documented commands write (--out, the sweeps' default storage)"),
    ("/", "absolute placeholders such as /path/to/ml-100k"),
    ("~", "per-user locations such as ~/.cache/gr-scaling"),
    ("$", "locations named by an environment variable ($GR_SCALING_DATA/...)"),
    (".venv/", "created by the install command on the same line"),
    ("train/", "results-table metric columns (train/loss) and the trial's output folder train/"),
    ("valid/", "results-table metric columns (valid/ndcg@10)"),
    ("oracle/", "results-table metric columns (oracle/ne)"),
    ("progressive/", "results-table metric columns (progressive/ne)"),
    ("test/", "results-table metric columns (test/...)"),
)

# exact token -> why it is not a file in the clone
SKIPPED_NAMES: dict[str, str] = {
    "../configs/run.yaml": "the sweep schema example's illustrative `base:` value",
    "result.json": "written by `scaling train` (and by each trial)",
    "results.parquet": "written by `scaling sweep`",
    "sweep.json": "written by `scaling sweep`",
    "tune/": "Ray Tune's folder inside a sweep's storage",
    "report.md": "written by `scaling analyze`",
    "report.html": "written by `scaling analyze`",
    "fits.json": "written by `scaling analyze`",
}

# a bare name (no folder) counts as a path only with one of these suffixes
FILE_SUFFIXES = frozenset({".yaml", ".yml", ".py", ".md", ".json", ".parquet", ".html", ".csv", ".toml", ".sh", ".txt"})

# subcommands whose documented command is executed in a check mode (the rest: --help)
CONFIG_COMMANDS = frozenset({"train", "config", "data"})  # validated with `scaling config`


def is_placeholder(token: str) -> bool:
    """A value the reader fills in (CONFIG.yaml, DIR, /path/to/x, data.path=..., s3://BUCKET/x)."""
    if "..." in token or "://" in token or token.startswith("/path/to") or "<" in token:
        return True
    return any(component.split(".")[0] in PLACEHOLDER_WORDS for component in token.split("/"))


def skip_reason(token: str) -> str | None:
    """Why ``token`` is not checked as a repository path, or None when it must exist."""
    if token in SKIPPED_NAMES:
        return SKIPPED_NAMES[token]
    if "://" in token:
        return "a URL or remote storage (s3://, gs://, http://HEAD:8265, ray://)"
    for prefix, reason in SKIPPED_PREFIXES:
        if token.startswith(prefix):
            return reason
    if is_placeholder(token):
        return "a placeholder the reader fills in"
    return None


# --- extraction -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A piece of markdown: a fenced code block, a list item, a table row or a paragraph."""

    kind: str  # "fence", "item", "row" or "text"
    language: str  # the fence's language; "" elsewhere
    line: int  # 1-based line of its first line
    text: str


@dataclass(frozen=True)
class DocPath:
    doc: str
    line: int
    token: str  # as written
    path: str  # relative to the repository root


@dataclass(frozen=True)
class DocCommand:
    doc: str
    line: int
    argv: tuple[str, ...]  # after `scaling`

    def __str__(self) -> str:
        return shlex.join(["scaling", *self.argv])


def split_blocks(markdown: str) -> list[Block]:
    """``markdown`` as fenced blocks, table rows, list items and paragraphs (continuation lines joined)."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        line, start = lines[index], index + 1
        if line.startswith("```"):
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            blocks.append(Block("fence", line[3:].strip(), start, "\n".join(lines[index + 1:end])))
            index = end + 1
        elif line.startswith("|"):
            blocks.append(Block("row", "", start, line))
            index += 1
        elif line.strip():
            kind = "item" if line.startswith("- ") else "text"
            end = index + 1
            while end < len(lines) and lines[end].strip() and not lines[end].startswith(("- ", "|", "```")):
                end += 1
            blocks.append(Block(kind, "", start, " ".join(lines[index:end])))
            index = end
        else:
            index += 1
    return blocks


CODE_SPAN = re.compile(r"`([^`]+)`")
LAYOUT_ITEM = re.compile(r"^- `([\w.-]+/)`:")
EDGE_PUNCTUATION = "()[]{},;:\"'"


def path_tokens(text: str) -> list[str]:
    """Words of ``text`` (and the values of key=value words), trimmed of surrounding punctuation."""
    words = [part for word in text.split() for part in word.split("=")]
    return [word.strip(EDGE_PUNCTUATION) for word in words if any(char.isalnum() for char in word)]


def looks_like_path(token: str, strict: bool) -> bool:
    """A folder path or a file name; in plain table text (``strict``) only a file name."""
    has_suffix = PurePosixPath(token.rstrip("/")).suffix in FILE_SUFFIXES
    return has_suffix if strict else ("/" in token or has_suffix)


def strip_comment(line: str) -> str:
    return re.sub(r"(^|\s)#.*$", "", line)


def block_paths(block: Block, doc_dir: PurePosixPath) -> list[tuple[int, str, str]]:
    """(line, token, path relative to the root) for every path-like token of ``block``."""
    if block.kind == "fence":
        lines = enumerate(block.text.splitlines(), start=block.line + 1)
        candidates = [(n, t, False) for n, line in lines for t in path_tokens(strip_comment(line))]
    else:
        spans = CODE_SPAN.findall(block.text)
        candidates = [(block.line, t, False) for span in spans for t in path_tokens(span)]
        if block.kind == "row":  # the table's plain text, outside code spans
            plain = CODE_SPAN.sub(" ", block.text).replace("|", " ")
            candidates += [(block.line, t, True) for t in path_tokens(plain)]
    layout = LAYOUT_ITEM.match(block.text) if block.kind == "item" else None
    found = []
    for line, token, strict in candidates:
        if not looks_like_path(token, strict):
            continue
        if "/" in token.rstrip("/"):  # a path from the root, where the docs' commands run
            base = PurePosixPath()
        elif layout and token != layout.group(1):  # listed under a layout bullet's folder
            base = doc_dir / layout.group(1)
        else:
            base = doc_dir
        found.append((line, token, str(base / token) + ("/" if token.endswith("/") else "")))
    return found


SHELL_SEPARATORS = ("&&", "||", ";", "|")


def shell_lines(block: Block) -> list[tuple[int, str]]:
    """(number of its first line, text) of each logical line of a fenced block; `\\` continues a line."""
    logical: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in enumerate(block.text.splitlines(), start=block.line + 1):
        first, text = pending or (number, "")
        if line.endswith("\\"):
            pending = (first, text + line[:-1] + " ")
        else:
            logical.append((first, text + line))
            pending = None
    return logical


def block_commands(block: Block) -> list[tuple[int, list[str]]]:
    """(line, the words after `scaling`) for every `scaling ...` command line of ``block``."""
    if block.kind != "fence":
        spans = CODE_SPAN.findall(block.text)
        return [(block.line, shlex.split(span)[1:]) for span in spans if span.startswith("scaling ")]
    if block.language not in ("bash", "sh", "shell", "console", ""):
        return []
    commands = []
    for number, line in shell_lines(block):
        words = shlex.split(line, comments=True)
        for start, word in enumerate(words):
            if word == "scaling" and (start == 0 or words[start - 1] in (*SHELL_SEPARATORS, "--")):
                end = next((i for i in range(start, len(words)) if words[i] in SHELL_SEPARATORS), len(words))
                commands.append((number, words[start + 1:end]))
    return commands


def expand_alternatives(words: list[str]) -> list[list[str]]:
    """`reproduce table4 / table2` -> `reproduce table4`, `reproduce table2`."""
    if "/" not in words:
        return [words]
    slash = words.index("/")
    end = slash + 1
    while end + 1 < len(words) and words[end + 1] == "/":
        end += 2
    choices = words[slash - 1:end + 1:2]
    before, after = words[:slash - 1], words[end + 1:]
    return [variant for choice in choices for variant in expand_alternatives([*before, choice, *after])]


def usage_to_argv(words: list[str]) -> list[str]:
    """A usage line as arguments: optional brackets dropped, `--opt ...` given a value, `...` repeats dropped."""
    argv: list[str] = []
    for word in words:
        word = word.lstrip("[").rstrip("]")
        if word == "...":
            if argv and argv[-1].startswith("--"):
                argv.append("KEY=VALUE")
            continue
        argv.append(word)
    return argv


def extract(doc: str, markdown: str) -> tuple[list[DocPath], list[DocCommand]]:
    """The paths (skipped ones included; first mention of each) and commands ``doc`` names."""
    doc_dir = PurePosixPath(doc).parent
    paths: dict[str, DocPath] = {}
    commands: dict[tuple[str, ...], DocCommand] = {}
    for block in split_blocks(markdown):
        for line, token, path in block_paths(block, doc_dir):
            paths.setdefault(path, DocPath(doc, line, token, path))
        for line, words in block_commands(block):
            for variant in expand_alternatives(words):
                argv = tuple(usage_to_argv(variant))
                commands.setdefault(argv, DocCommand(doc, line, argv))
    return list(paths.values()), list(commands.values())


EXTRACTED = {doc: extract(doc, (ROOT / doc).read_text()) for doc in DOCS}
CHECKED_PATHS = [p for doc in DOCS for p in EXTRACTED[doc][0] if skip_reason(p.token) is None]
COMMANDS = [c for doc in DOCS for c in EXTRACTED[doc][1]]


# --- the extraction finds what it must ------------------------------------------------------


def test_extraction_finds_the_paths_and_commands_the_docs_are_known_to_name():
    readme_paths = {p.path for p in EXTRACTED["README.md"][0]}
    sweeps_paths = {p.path for p in EXTRACTED["sweeps/README.md"][0]}
    assert {"sweeps/quickstart.yaml", "sweeps/runs/table4-ml-100k-hstu.yaml"} <= readme_paths
    assert {"analysis/", "scaling/data/", "scaling/train.py"} <= readme_paths  # the layout bullets
    assert {"sweeps/quickstart.yaml", "sweeps/table4.yaml", "sweeps/gr_vs_dlrm.yaml"} <= sweeps_paths
    commands = {str(c) for c in COMMANDS}
    assert "scaling sweep sweeps/quickstart.yaml --dry-run" in commands
    assert "scaling reproduce stochastic-length" in commands
    assert any(c.startswith("scaling train sweeps/runs/table4-ml-100k-hstu.yaml --set") for c in commands)


def test_a_broken_path_or_command_is_extracted_and_not_skipped():
    markdown = (
        "| sweep | what |\n|---|---|\n| `missing.yaml` | see plain.yaml |\n\n"
        "See `sweeps/nope.yaml` and `runs/out`.\n\n"
        "```bash\nscaling sweep sweeps/nope.yaml --dry-run  # comment\n```\n"
    )
    paths, commands = extract("sweeps/README.md", markdown)
    checked = {p.path for p in paths if skip_reason(p.token) is None}
    assert checked == {"sweeps/missing.yaml", "sweeps/plain.yaml", "sweeps/nope.yaml"}
    assert [c.argv for c in commands] == [("sweep", "sweeps/nope.yaml", "--dry-run")]


# --- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("named", [pytest.param(p, id=f"{p.doc}:{p.token}") for p in CHECKED_PATHS])
def test_named_path_exists_in_a_clone(named: DocPath):
    where = f"{named.doc} line {named.line} names `{named.token}`"
    path, _, test_name = named.path.partition("::")  # tests/x.py::test_y: the test must exist too
    target = ROOT / path
    if test_name:
        assert target.is_file() and f"def {test_name}(" in target.read_text(), f"{where}, but there is no such test"
    assert target.exists(), f"{where}, but {named.path} does not exist"
    assert target.is_dir() or not path.endswith("/"), f"{where}, but {path} is not a folder"
    ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False).returncode == 0
    assert not ignored, f"{where}, but {named.path} is git-ignored, so a fresh clone will not have it"


# --- commands -------------------------------------------------------------------------------


def subcommand_path(argv: tuple[str, ...]) -> list[str]:
    """The leading subcommand words of ``argv`` (`reproduce table4`, `sweep`)."""
    parser, path = build_parser(), []
    for word in argv:
        subparsers = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if subparsers is None or word not in subparsers.choices:
            break
        path.append(word)
        parser = subparsers.choices[word]
    return path


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str], what: str) -> None:
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse: --help, or a usage error
        code = stop.code
    output = capsys.readouterr()
    assert code in (0, None), f"{what}: `scaling {shlex.join(argv)}` exited {code}\n{output.err}{output.out[-2000:]}"


def check_argv(command: DocCommand, args: argparse.Namespace, storage: Path) -> list[str] | None:
    """The command in a mode that validates without training or network (a sweep's dry run into a
    private storage, a run config's validation), or None when it has none: then --help is the check."""
    name = command.argv[0]
    if name == "sweep" and not is_placeholder(str(args.sweep)):
        flags = ["--resume"] * args.resume + ["--retry-failed"] * args.retry_failed
        sets = [word for override in args.overrides for word in ("--set", override)]
        return ["sweep", str(args.sweep), *flags, *sets, "--storage", str(storage), "--dry-run"]
    if name == "config" and args.keys:
        return list(command.argv)
    if name in CONFIG_COMMANDS:
        config = [] if args.config is None else [str(args.config)]
        if config and is_placeholder(config[0]):
            return None
        return ["config", *config, *[word for override in args.overrides for word in ("--set", override)]]
    return None


@pytest.mark.parametrize("command", [pytest.param(c, id=f"{c.doc}:{c}") for c in COMMANDS])
def test_documented_command_parses_and_validates(command: DocCommand, capsys, monkeypatch, tmp_path):
    what = f"{command.doc} line {command.line}: `{command}`"
    monkeypatch.chdir(ROOT)  # the docs' commands run from the repository root
    subcommands = subcommand_path(command.argv)
    assert subcommands, f"{what}: `{command.argv[0]}` is not a scaling subcommand"
    run_cli([*subcommands, "--help"], capsys, what)
    if list(command.argv) == subcommands:  # a bare subcommand: that it exists is the promise
        return
    try:
        args = build_parser().parse_args(list(command.argv))
    except SystemExit:
        pytest.fail(f"{what} does not parse:\n{capsys.readouterr().err}")
    checked = check_argv(command, args, tmp_path / "storage")
    if checked is not None:
        run_cli(checked, capsys, what)
