"""Discovery finds flows and deployments without running repository code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from control_plane.discovery import UNREAD_CODES, discover, parse_flow_file
from control_plane.environments import RepositoryConfig
from control_plane.forked import can_fork
from tests.conftest import EXAMPLES, REPO_ROOT
from tests.unit.test_forked import in_fresh_interpreter, needs_fork

HOSTILE_TOP_LEVELS = {
    "writes_marker.py": """
        import pathlib
        pathlib.Path({marker!r}).write_text("ran")
        from prefect import flow

        @flow
        def marker_flow(x: int = 1):
            return x
    """,
    "exits.py": """
        import sys
        sys.exit(3)
        from prefect import flow

        @flow(name="exit-flow")
        def exits():
            pass
    """,
    "imports_missing.py": """
        import this_module_does_not_exist_anywhere
        from prefect import flow

        @flow
        def needs_missing(n: int = 2) -> int:
            return n
    """,
    "loops.py": """
        from prefect import flow
        while True:
            pass

        @flow
        def after_the_loop(s: str = "x"):
            return s
    """,
}


def test_hostile_top_levels_are_never_run(write_repo, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    repo = write_repo(
        {
            name: text.replace("{marker!r}", repr(str(marker)))
            for name, text in HOSTILE_TOP_LEVELS.items()
        }
    )
    # In a subprocess with a timeout: if discovery ran the loop, this would time out, and
    # sys.exit would end the process with 3 before printing anything.
    completed = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "discover", str(repo), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    import json

    found = {f["name"]: f["entrypoint"] for f in json.loads(completed.stdout)["flows"]}
    assert found == {
        "marker-flow": "writes_marker.py:marker_flow",
        "exit-flow": "exits.py:exits",
        "needs-missing": "imports_missing.py:needs_missing",
        "after-the-loop": "loops.py:after_the_loop",
    }
    assert not marker.exists()


FLOW_FORMS = [
    ("from prefect import flow\n@flow\ndef a_b(): pass\n", "a-b", "a_b"),
    ("from prefect import flow\n@flow()\ndef a_b(): pass\n", "a-b", "a_b"),
    (
        "from prefect import flow\n@flow(name='Explicit Name')\ndef a(): pass\n",
        "Explicit Name",
        "a",
    ),
    ("import prefect\n@prefect.flow\ndef p_flow(): pass\n", "p-flow", "p_flow"),
    ("import prefect as pf\n@pf.flow(retries=2)\ndef p_flow(): pass\n", "p-flow", "p_flow"),
    (
        "from prefect import flow as pipeline\n@pipeline\ndef aliased(): pass\n",
        "aliased",
        "aliased",
    ),
    ("from prefect.flows import flow\n@flow\ndef from_flows(): pass\n", "from-flows", "from_flows"),
    ("from prefect import flow\n@flow\nasync def co(): pass\n", "co", "co"),
    ("from prefect import flow\ndef fn(): pass\nmy_flow = flow(fn)\n", "fn", "my_flow"),
    (
        "from prefect import flow\ndef fn(): pass\nmy_flow = flow(name='assigned')(fn)\n",
        "assigned",
        "my_flow",
    ),
    ("import prefect.flows\n@prefect.flows.flow\ndef deep(): pass\n", "deep", "deep"),
    (
        "try:\n    from prefect import flow\nexcept ImportError:\n    flow = None\n"
        "@flow\ndef t(): pass\n",
        "t",
        "t",
    ),
    # Python reads identifiers NFKC-normalised: these are `flow`, without the bytes of it
    (
        "from prefect import \uff46\uff4c\uff4f\uff57\n@\uff46\uff4c\uff4f\uff57\ndef w(): pass\n",
        "w",
        "w",
    ),
    ("import prefect\n@prefect.\ufb02ow\ndef lig(): pass\n", "lig", "lig"),
]


@pytest.mark.parametrize(("source", "name", "attribute"), FLOW_FORMS)
def test_flow_forms(source: str, name: str, attribute: str) -> None:
    flows, problems = parse_flow_file(source.encode(), "pkg/mod.py")
    assert [(f.name, f.entrypoint) for f in flows] == [(name, f"pkg/mod.py:{attribute}")]
    assert [p for p in problems if p.severity == "error"] == []


@pytest.mark.parametrize(("source", "name", "attribute"), FLOW_FORMS)
def test_every_flow_form_passes_the_pre_filter(
    write_repo, source: str, name: str, attribute: str
) -> None:
    """Files are skipped unread when they cannot define a flow: never one that does."""
    repo = write_repo({"pkg/mod.py": source, "pkg/other.py": "import os\nX = 'ow'\n"})
    result = discover(repo)
    assert [(f.name, f.entrypoint) for f in result.flows] == [(name, f"pkg/mod.py:{attribute}")]
    assert result.python_files_parsed == 1  # other.py was not parsed


def test_names_and_descriptions_match_prefect(tmp_path: Path) -> None:
    """Prefect's own Flow object is the oracle for name and description."""
    source = '''
from prefect import flow

@flow
def snake_case_name():
    """First line.

        Indented more.
    Back.
    """

@flow(description="explicit wins")
def with_description():
    """ignored docstring"""

@flow(name="n", description=None)
def no_description():
    pass
'''
    module = tmp_path / "oracle_mod.py"
    module.write_text(source)
    sys.path.insert(0, str(tmp_path))
    try:
        import oracle_mod  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    flows, _ = parse_flow_file(source.encode(), "oracle_mod.py")
    ours = {f.function: (f.name, f.description) for f in flows}
    theirs = {
        attr: (getattr(oracle_mod, attr).name, getattr(oracle_mod, attr).description)
        for attr in ("snake_case_name", "with_description", "no_description")
    }
    assert ours == theirs


def test_not_a_flow_without_prefect_import() -> None:
    source = b"def flow(f): return f\n@flow\ndef looks_like_one(): pass\n"
    assert parse_flow_file(source, "x.py") == ([], [])


def test_syntax_error_does_not_hide_good_files(write_repo) -> None:
    repo = write_repo(
        {
            "good.py": "from prefect import flow\n@flow\ndef good(): pass\n",
            "bad.py": "from prefect import flow\n@flow\ndef bad(:\n",
        }
    )
    result = discover(repo)
    assert [f.entrypoint for f in result.flows] == ["good.py:good"]
    assert [(p.file, p.line, p.code) for p in result.problems] == [("bad.py", 3, "syntax-error")]
    assert result.failed_files == {"bad.py"}


def load_with_prefect(repo: Path, entrypoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The flow as Prefect loads it (running the file), from the repository root as cwd."""
    from prefect.flows import load_flow_from_entrypoint

    monkeypatch.chdir(repo)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        return load_flow_from_entrypoint(entrypoint, use_placeholder_flow=False)
    finally:
        for module_name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", None) or "").startswith(str(repo)):
                del sys.modules[module_name]


HEADER = "from prefect import flow\n"
NAME_FORMS: dict[str, tuple[dict[str, str], str]] = {
    "literal": ({"f.py": HEADER + "@flow(name='etl-daily')\ndef fn(): pass\n"}, "f.py:fn"),
    "f-string-without-placeholders": (
        {"f.py": HEADER + "@flow(name=f'etl-daily')\ndef fn(): pass\n"},
        "f.py:fn",
    ),
    "module-constant": (
        {"f.py": HEADER + "FLOW_NAME = 'etl-daily'\n@flow(name=FLOW_NAME)\ndef fn(): pass\n"},
        "f.py:fn",
    ),
    "annotated-constant": (
        {"f.py": HEADER + "NAME: str = 'typed'\n@flow(name=NAME)\ndef fn(): pass\n"},
        "f.py:fn",
    ),
    "concatenation": (
        {"f.py": HEADER + "PREFIX = 'sales'\n@flow(name=PREFIX + '-daily')\ndef fn(): pass\n"},
        "f.py:fn",
    ),
    "implicit-concatenation": (
        {"f.py": HEADER + "@flow(\n    name=('sales'\n          '-daily'),\n)\ndef fn(): pass\n"},
        "f.py:fn",
    ),
    "f-string-of-constants": (
        {
            "f.py": HEADER
            + "TEAM = 'sales'\nVERSION = 2\n@flow(name=f'{TEAM}-daily-v{VERSION:02d}-{TEAM!r}')\n"
            "def fn(): pass\n"
        },
        "f.py:fn",
    ),
    "rebound-before-the-flow": (
        {"f.py": HEADER + "N = 'a'\nN = N + '-b'\n@flow(name=N)\ndef fn(): pass\n"},
        "f.py:fn",
    ),
    "rebound-after-the-flow": (
        {"f.py": HEADER + "N = 'a'\n@flow(name=N)\ndef fn(): pass\nN = 'later'\n"},
        "f.py:fn",
    ),
    "empty-name-is-the-function-name": (
        {"f.py": HEADER + "@flow(name='')\ndef my_fn(): pass\n"},
        "f.py:my_fn",
    ),
    "assigned-flow": (
        {"f.py": HEADER + "N = 'assigned'\ndef fn(): pass\nmy_flow = flow(name=N)(fn)\n"},
        "f.py:my_flow",
    ),
    "imported-from-a-sibling": (
        {
            "jobs/names.py": "FLOW_NAME = 'from-sibling'\n",
            "jobs/f.py": HEADER + "from names import FLOW_NAME\n@flow(name=FLOW_NAME)\n"
            "def fn(): pass\n",
        },
        "jobs/f.py:fn",
    ),
    "imported-relatively": (
        {
            "jobs/names.py": "FLOW_NAME = 'relative'\n",
            "jobs/f.py": HEADER + "from .names import FLOW_NAME\n@flow(name=FLOW_NAME)\n"
            "def fn(): pass\n",
        },
        "jobs/f.py:fn",
    ),
    "imported-from-the-root-package": (
        {
            "common/__init__.py": "from .names import PREFIX as PREFIX\n",
            "common/names.py": "BASE = 'acme'\nPREFIX = BASE + '-sales'\n",
            "jobs/daily/f.py": HEADER + "from common import PREFIX\n"
            "@flow(name=f'{PREFIX}-daily')\ndef fn(): pass\n",
        },
        "jobs/daily/f.py:fn",
    ),
    "module-attribute": (
        {
            "common/names.py": "PREFIX = 'ns'\n",  # a namespace package: no __init__.py
            "jobs/f.py": HEADER + "from common import names\nimport common.names as n\n"
            "@flow(name=names.PREFIX + '-' + n.PREFIX)\ndef fn(): pass\n",
        },
        "jobs/f.py:fn",
    ),
    "try-import-fallback": (
        {
            "jobs/names.py": "FLOW_NAME = 'tried'\n",
            "jobs/f.py": HEADER + "try:\n    from names import FLOW_NAME\nexcept ImportError:\n"
            "    FLOW_NAME = 'fallback'\n@flow(name=FLOW_NAME)\ndef fn(): pass\n",
        },
        "jobs/f.py:fn",
    ),
    "description-from-constants": (
        {
            "f.py": HEADER + "TEAM = 'sales'\nDESCRIPTION = 'Loads ' + TEAM + ' orders.'\n"
            '@flow(description=DESCRIPTION)\ndef fn():\n    """docstring"""\n',
        },
        "f.py:fn",
    ),
    "empty-description-is-the-docstring": (
        {"f.py": HEADER + '@flow(description="")\ndef fn():\n    """The docstring."""\n'},
        "f.py:fn",
    ),
}


@pytest.mark.parametrize("form", sorted(NAME_FORMS))
def test_flow_names_equal_prefects(write_repo, monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    """Prefect itself, importing the file, is the oracle for the name and description."""
    files, entrypoint = NAME_FORMS[form]
    repo = write_repo(files)
    result = discover(repo)
    assert result.problems == ()
    ours = {f.entrypoint: (f.name, f.description) for f in result.flows}
    theirs = load_with_prefect(repo, entrypoint, monkeypatch)
    assert ours[entrypoint] == (theirs.name, theirs.description)


UNREADABLE_NAMES = [
    pytest.param(
        "@flow(name=get_name())", "it calls `get_name()`, which runs at import", id="call"
    ),
    pytest.param(
        "@flow(name=f'etl-{os.environ[\"ENV\"]}')",
        "it computes `os.environ['ENV']`",
        id="f-string-with-a-runtime-placeholder",
    ),
    pytest.param(
        "if os.environ.get('PROD'):\n    N = 'etl'\nelse:\n    N = 'etl-dev'\n@flow(name=N)",
        "'N' is assigned conditionally",
        id="conditional-assignment",
    ),
    pytest.param(
        "N = 'a'\nN += '-b'\n@flow(name=N)", "'N' is an augmented assignment", id="augmented"
    ),
    pytest.param(
        "from settings import N\n@flow(name=N)",
        "'N' is imported from 'settings', which is not a module of this repository",
        id="imported-from-outside",
    ),
    pytest.param(
        "@flow(name=N)", "'N' is not a module-level constant above the decorator", id="undefined"
    ),
]


@pytest.mark.parametrize(("decorator", "reason"), UNREADABLE_NAMES)
def test_a_name_only_code_can_tell_is_a_problem_not_a_guess(
    write_repo, decorator: str, reason: str
) -> None:
    source = f"import os\nfrom prefect import flow\n{decorator}\ndef fn(): pass\n"
    other = HEADER + "@flow\ndef other(): pass\n"
    repo = write_repo({"jobs/f.py": source, "jobs/other.py": other})
    result = discover(repo)
    assert [f.name for f in result.flows] == ["other"]  # no flow named 'fn'
    [problem] = result.problems
    assert (problem.file, problem.code, problem.severity) == (
        "jobs/f.py",
        "dynamic-flow-name",
        "warning",
    )
    assert reason in problem.message
    assert "string literal" in problem.remedy
    assert [d.flow.name for d in result.deployments] == ["other"]
    assert result.failed_files == {"jobs/f.py"}  # its deployments are not pruned


def test_a_deployment_of_a_flow_with_an_unreadable_name_is_refused(write_repo) -> None:
    repo = write_repo(
        {
            "f.py": HEADER + "@flow(name=make_name())\ndef fn(): pass\n",
            "prefect.yaml": "deployments:\n  - name: daily\n    entrypoint: f.py:fn\n",
        }
    )
    result = discover(repo)
    assert result.deployments == ()
    assert [(p.file, p.line, p.code, p.severity) for p in result.problems] == [
        ("f.py", 2, "dynamic-flow-name", "warning"),
        ("prefect.yaml", 2, "dynamic-flow-name", "error"),
    ]
    assert "deployment 'daily' is not applied" in result.problems[1].message


def test_a_name_that_is_not_a_string_is_refused_as_prefect_does(write_repo) -> None:
    repo = write_repo({"f.py": HEADER + "N = 3\n@flow(name=N)\ndef fn(): pass\n"})
    result = discover(repo)
    assert result.flows == ()
    assert [(p.code, p.severity) for p in result.problems] == [("invalid-flow-name", "error")]


def test_banned_characters_in_flow_name() -> None:
    flows, problems = parse_flow_file(
        b"from prefect import flow\n@flow(name='a/b')\ndef fn(): pass\n", "m.py"
    )
    assert flows == []
    assert [(p.code, p.line) for p in problems] == [("invalid-flow-name", 2)]


def test_undecodable_and_null_bytes(write_repo) -> None:
    repo = write_repo({"ok.py": "from prefect import flow\n@flow\ndef ok(): pass\n"})
    (repo / "latin.py").write_bytes(b"# flow \xff\xfe\n")
    (repo / "nul.py").write_bytes(b"flow = 1\x00\n")
    result = discover(repo)
    assert [f.name for f in result.flows] == ["ok"]
    codes = {p.file: p.code for p in result.problems}
    assert codes["latin.py"] == "unreadable-file"
    # Python raises SyntaxError or ValueError for NUL bytes depending on the patch release
    assert codes["nul.py"] in ("syntax-error", "unparsable-file")
    assert set(codes) == {"latin.py", "nul.py"}


IGNORED_LAYOUT = {
    "flows/kept.py": "from prefect import flow\n@flow\ndef kept(): pass\n",
    ".venv/lib/site.py": "from prefect import flow\n@flow\ndef venv_flow(): pass\n",
    "env/pyvenv.cfg": "home = /usr\n",
    "env/lib/x.py": "from prefect import flow\n@flow\ndef env_flow(): pass\n",
    "node_modules/pkg/x.py": "from prefect import flow\n@flow\ndef nm(): pass\n",
    "build_output/x.py": "from prefect import flow\n@flow\ndef gitignored(): pass\n",
    "sub/.gitignore": "local_*.py\n",
    "sub/local_scratch.py": "from prefect import flow\n@flow\ndef nested_ignored(): pass\n",
    "sub/real.py": "from prefect import flow\n@flow\ndef sub_real(): pass\n",
    "notes/draft.py": "from prefect import flow\n@flow\ndef prefectignored(): pass\n",
    "scratch/x.py": "from prefect import flow\n@flow\ndef excluded(): pass\n",
    ".gitignore": "build_output/\n",
    ".prefectignore": "# comment\nnotes/\n",
}


def test_ignore_rules(write_repo) -> None:
    repo = write_repo(IGNORED_LAYOUT)
    result = discover(repo, RepositoryConfig(exclude=("scratch/**",)))
    assert sorted(f.name for f in result.flows) == ["kept", "sub-real"]


def test_symlink_out_of_the_repository_is_not_followed(write_repo, tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("from prefect import flow\n@flow\ndef outside(): pass\n")
    repo = write_repo({"in.py": "from prefect import flow\n@flow\ndef inside(): pass\n"})
    os.symlink(outside, repo / "link.py")
    result = discover(repo)
    assert [f.name for f in result.flows] == ["inside"]
    assert [(p.file, p.code) for p in result.problems] == [("link.py", "symlink-outside-repo")]


def test_a_loop_of_links_or_a_dangling_one_is_a_warning_not_a_crash(write_repo) -> None:
    repo = write_repo({"in.py": "from prefect import flow\n@flow\ndef inside(): pass\n"})
    os.symlink("a.py", repo / "b.py")
    os.symlink("b.py", repo / "a.py")
    os.symlink("gone.yaml", repo / "prefect.yaml")
    os.symlink("loop", repo / "loop")
    result = discover(repo)
    assert [f.name for f in result.flows] == ["inside"]
    assert sorted((p.file, p.code) for p in result.problems) == [
        ("a.py", "symlink-broken"), ("b.py", "symlink-broken"), ("loop", "symlink-broken"),
        ("prefect.yaml", "symlink-broken"),
    ]  # fmt: skip


FLOW = "from prefect import flow\n@flow\ndef {0}(): pass\n"
# kind of file -> (its path in the repository, what the outside file holds)
OUTSIDE_FILES = {
    "deploy-manager.yaml": (
        "deploy-manager.yaml",
        "environments:\n  production:\n    branches: ['*']\n    name_pattern: LEAKED-{name}\n",
    ),
    "prefect.yaml": ("prefect.yaml", "deployments:\n  - name: LEAKED\n    entrypoint: a.py:a\n"),
    "nested prefect.yaml": (
        "sub/prefect.yaml", "deployments:\n  - name: LEAKED\n    entrypoint: ../a.py:a\n",
    ),
    ".gitignore": (".gitignore", "hidden/\n"),
    ".prefectignore": (".prefectignore", "hidden/\n"),
    "Dockerfile": ("Dockerfile", "FROM LEAKED\n"),
    "requirements.txt": ("requirements.txt", "LEAKED==1\n"),
    "pyproject.toml": ("pyproject.toml", "[project]\nname = 'LEAKED'\n"),
    "a flow file": ("b.py", FLOW.format("leaked")),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(OUTSIDE_FILES))
@pytest.mark.parametrize("via", ["file link", "directory link"])
def test_no_file_outside_the_checkout_is_ever_read(
    write_repo, tmp_path: Path, kind: str, via: str
) -> None:
    """A link out of the repository feeds nothing: names, ignore rules, code digests."""
    rel, text = OUTSIDE_FILES[kind]
    repo = write_repo({"a.py": FLOW.format("a"), "hidden/h.py": FLOW.format("h")})
    baseline = discover(repo)
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "dir" / Path(rel).name).write_text(text)
    link = repo / rel
    link.parent.mkdir(parents=True, exist_ok=True)
    if via == "file link":
        os.symlink(outside / "dir" / Path(rel).name, link)
    else:  # the file lies under a link to an outside directory
        os.symlink(outside / "dir", repo / "linked")
        os.symlink(Path("linked") / Path(rel).name if "/" not in rel else
                   Path("..") / "linked" / Path(rel).name, link)  # fmt: skip
    result = discover(repo)
    described = repr((result.flows, result.deployments, result.config))
    assert "LEAKED" not in described and "leaked" not in described
    assert sorted(f.name for f in result.flows) == ["a", "h"]
    assert [f.code_fingerprint for f in result.flows] == [
        f.code_fingerprint for f in baseline.flows
    ]
    assert all(not f.dependencies for f in result.flows)
    assert any(p.file in (rel, "linked") for p in result.problems)  # said, not silent


def test_default_deployments_and_switch(write_repo) -> None:
    repo = write_repo(
        {
            "a.py": (
                "from prefect import flow\n@flow\ndef listed(): pass\n@flow\ndef unlisted(): pass\n"
            ),
            "prefect.yaml": "deployments:\n  - name: prod\n    entrypoint: a.py:listed\n",
        }
    )
    result = discover(repo)
    assert sorted((d.flow.name, d.name, d.is_default) for d in result.deployments) == [
        ("listed", "prod", False),
        ("unlisted", "unlisted", True),
    ]
    off = discover(repo, RepositoryConfig(default_deployments=False))
    assert [(d.flow.name, d.name) for d in off.deployments] == [("listed", "prod")]


def test_no_default_deployment_below_a_prefect_yaml_that_cannot_be_read(write_repo) -> None:
    """It may declare those flows: a default deployment now would be pruned once it is fixed."""
    flow = "from prefect import flow\n@flow\ndef {0}(): pass\n"
    repo = write_repo(
        {
            "pipelines/ml/train.py": flow.format("train"),
            "pipelines/ml/prefect.yaml": "deployments:\n  - name: x\n    entrypoint: [oops\n",
            "other/job.py": flow.format("job"),
        }
    )
    result = discover(repo)
    assert [d.flow.name for d in result.deployments] == ["job"]
    assert [p.code for p in result.errors] == ["invalid-yaml"]


def test_entrypoint_to_a_function_that_is_not_a_flow(write_repo) -> None:
    repo = write_repo(
        {
            "a.py": "from prefect import flow\ndef helper(): pass\n@flow\ndef real(): pass\n",
            "prefect.yaml": "deployments:\n  - name: d\n    entrypoint: a.py:helper\n",
        }
    )
    result = discover(repo)
    problem = next(p for p in result.problems if p.code == "entrypoint-not-a-flow")
    assert (problem.file, problem.line) == ("prefect.yaml", 2)
    assert "'helper'" in problem.message and "real" in problem.message


def test_duplicate_deployments_across_files(write_repo) -> None:
    repo = write_repo(
        {
            "a.py": "from prefect import flow\n@flow\ndef f(): pass\n",
            "prefect.yaml": "deployments:\n  - name: d\n    entrypoint: a.py:f\n",
            "sub/prefect.yaml": "deployments:\n  - name: d\n    entrypoint: a.py:f\n",
        }
    )
    result = discover(repo)
    assert result.deployments == ()
    assert sorted((p.file, p.code) for p in result.problems) == [
        ("prefect.yaml", "duplicate-deployment"),
        ("sub/prefect.yaml", "duplicate-deployment"),
    ]


def test_dependencies_are_the_nearest_files(write_repo) -> None:
    repo = write_repo(
        {
            "pyproject.toml": "[project]\nname='x'\n",
            "team/requirements.txt": "pandas\n",
            "team/Dockerfile": "FROM python\n",
            "team/jobs/f.py": "from prefect import flow\n@flow\ndef f(): pass\n",
        }
    )
    (flow,) = discover(repo).flows
    assert flow.dependencies == ("pyproject.toml", "team/requirements.txt", "team/Dockerfile")


def test_examples_repository() -> None:
    result = discover(EXAMPLES)
    assert [p for p in result.problems if p.severity == "error"] == []
    assert sorted((d.flow.name, d.name, d.is_default) for d in result.deployments) == [
        ("build-report", "weekly-report", False),
        ("daily-etl", "daily", False),
        ("retrain-model", "retrain", False),
        ("vacuum-warehouse", "vacuum-warehouse", True),
    ]


MIXED_FILES = {
    "enum_and_model.py": """
        from enum import Enum
        from pydantic import BaseModel
        from prefect import flow

        class Mode(str, Enum):
            FULL = "full"

        class Options(BaseModel):
            size: int = 1

        @flow(name="typed")
        def typed(mode: Mode = Mode.FULL, options: Options | None = None) -> None:
            pass
    """,
    "dynamic.py": "import os\nfrom prefect import flow\n@flow(name=os.getenv('X'))\ndef d(): ...\n",
    "syntax.py": "from prefect import flow\n@flow\ndef bad(:\n",
    "twice_a.py": "from prefect import flow\n@flow(name='same')\ndef a(): pass\n",
    "twice_b.py": "from prefect import flow\n@flow(name='same')\ndef b(): pass\n",
    "helper.py": "VALUE = 1\n",
    "prefect.yaml": "deployments:\n  - name: d\n    entrypoint: enum_and_model.py:typed\n",
    **{f"many/f{i}.py": FLOW.format(f"f{i}") for i in range(20)},
}


@needs_fork
@pytest.mark.parametrize("which", ["examples", "monorepo", "mixed"])
def test_a_forked_child_finds_what_one_process_finds(write_repo, which: str) -> None:
    """Compared in a fresh interpreter: this one may run threads, and then never forks."""
    if which == "mixed":
        repo = write_repo(MIXED_FILES)
        (repo / "latin.py").write_bytes(b"# flow \xff\xfe\n")
    else:
        repo = EXAMPLES if which == "examples" else REPO_ROOT / "tests" / "fixtures" / "monorepo"
    in_fresh_interpreter(_check_a_forked_child_finds_what_one_process_finds, str(repo), which)


def _check_a_forked_child_finds_what_one_process_finds(root: str, which: str) -> None:
    assert can_fork()
    repo = Path(root)
    one = discover(repo, parallel=False)
    two = discover(repo, parallel=True)
    assert two == one
    assert one.flows
    if which == "mixed":
        assert {"syntax-error", "dynamic-flow-name", "unreadable-file"} <= {
            p.code for p in one.problems
        }


def test_discovery_does_not_import_prefect() -> None:
    code = (
        "import sys; from pathlib import Path; from control_plane.discovery import discover; "
        f"discover(Path({str(EXAMPLES)!r})); "
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert out.stdout.strip() == "[]"


def test_code_fingerprint_follows_local_imports_only(write_repo) -> None:
    repo = write_repo(
        {
            "pkg/__init__.py": "",
            "pkg/helpers.py": "X = 1\n",
            "pkg/other.py": "Y = 1\n",
            "jobs/etl.py": (
                "from prefect import flow\nfrom pkg.helpers import X\n"
                "from . import sibling\n@flow\ndef etl(): pass\n"
            ),
            "jobs/sibling.py": "Z = 1\n",
            "requirements.txt": "pandas\n",
        }
    )
    (flow,) = discover(repo).flows
    assert flow.local_imports == ("jobs/sibling.py", "pkg/__init__.py", "pkg/helpers.py")
    before = flow.code_fingerprint
    (repo / "pkg/other.py").write_text("Y = 2\n")
    assert discover(repo).flows[0].code_fingerprint == before
    (repo / "pkg/helpers.py").write_text("X = 2\n")
    changed = discover(repo).flows[0].code_fingerprint
    assert changed != before
    (repo / "requirements.txt").write_text("pandas==2\n")
    assert discover(repo).flows[0].code_fingerprint != changed


ETL = HEADER + "@flow\ndef etl(): pass\n"
SAME_NAME = {
    "tutorials/one/etl.py": ETL,
    "tutorials/two/etl.py": ETL,
    "examples/etl.py": HEADER + "@flow(name='etl')\ndef run(): pass\n",
    "jobs/other.py": HEADER + "@flow\ndef other(): pass\n",
}


@pytest.mark.parametrize(
    ("prefect_yaml", "deployments", "fragment"),
    [
        pytest.param(
            None,
            [("other", "other", True)],
            "none of examples/etl.py:run, tutorials/one/etl.py:etl, tutorials/two/etl.py:etl "
            "gets a default deployment",
            id="none-declared",
        ),
        pytest.param(
            "deployments:\n  - name: nightly\n    entrypoint: tutorials/two/etl.py:etl\n",
            [("etl", "nightly", False), ("other", "other", True)],
            "tutorials/two/etl.py:etl is deployed as a prefect.yaml declares",
            id="one-declared",
        ),
    ],
)
def test_one_flow_name_in_several_files_gets_no_default_and_one_warning(
    write_repo, prefect_yaml: str | None, deployments: list[Any], fragment: str
) -> None:
    files = {**SAME_NAME, **({"prefect.yaml": prefect_yaml} if prefect_yaml else {})}
    result = discover(write_repo(files))
    assert [(d.flow.name, d.name, d.is_default) for d in result.deployments] == deployments
    [problem] = result.problems
    assert (problem.code, problem.severity) == ("ambiguous-flow-name", "warning")
    assert "the flow name 'etl' is defined 3 times" in problem.message
    assert fragment in problem.message
    assert "declare it in a prefect.yaml" in problem.remedy and "exclude" in problem.remedy


def flow_file(function: str) -> str:
    return HEADER + f"@flow\ndef {function}(): pass\n"


SWITCHED_OFF = {
    "root_job.py": flow_file("root_job"),
    "pipelines/on/job.py": flow_file("on_job"),
    "pipelines/off/prefect.yaml": "name: switched-off\ndeployments: []\n",
    "pipelines/off/job.py": flow_file("off_job"),
    "pipelines/off/deeper/job.py": flow_file("off_deeper_job"),
    "pipelines/offish/job.py": flow_file("offish_job"),  # not under pipelines/off
    "pipelines/broken/prefect.yaml": "deployments:\n  - name: a\n   entrypoint: x\n",
    "pipelines/broken/job.py": flow_file("broken_job"),
    "pipelines/steps-only/prefect.yaml": (
        "pull:\n  - prefect.deployments.steps.set_working_directory:\n      directory: /app\n"
    ),
    "pipelines/steps-only/job.py": flow_file("steps_only_job"),
}


def test_deployments_empty_list_switches_off_its_directory(write_repo) -> None:
    result = discover(write_repo(SWITCHED_OFF))
    assert sorted(d.flow.name for d in result.deployments) == [
        "offish-job",
        "on-job",
        "root-job",
        "steps-only-job",
    ]
    assert [(p.file, p.code, p.severity) for p in result.problems] == [
        ("pipelines/broken/prefect.yaml", "no-default-deployments", "warning"),
        ("pipelines/broken/prefect.yaml", "invalid-yaml", "error"),
        ("pipelines/steps-only/prefect.yaml", "no-deployments-list", "info"),
    ]
    assert "pipelines/steps-only/job.py:steps_only_job" in result.problems[2].message
    assert "deployments: []" in result.problems[2].remedy


def test_deployments_empty_list_at_the_root_is_no_default_deployments(write_repo) -> None:
    repo = write_repo({**SWITCHED_OFF, "prefect.yaml": "deployments: []\n"})
    assert discover(repo).deployments == ()


@pytest.mark.parametrize(
    "text",
    [
        "deployments: [\n",
        "deployments: {name: a}\n",
        "- name: a\n",
        "deployments: []\n",
        "name: x\n",
        "",
        "deployments:\n  - name: a\n    entrypoint: nope.py:f\n",
        "deployments:\n  - name: a\n    cron: 1\n",
    ],
)
def test_unread_codes_are_what_makes_a_prefect_yaml_unreadable(write_repo, text: str) -> None:
    """The reconcile keeps the deployments of a file with one of UNREAD_CODES; discovery
    holds back the default deployments of a file whose deployments_list is unreadable."""
    repo = write_repo({"prefect.yaml": text})
    [yaml_file] = discover(repo).prefect_yaml_files
    unread = any(p.code in UNREAD_CODES for p in yaml_file.errors)
    assert unread == (yaml_file.deployments_list == "unreadable")


def test_a_declared_entrypoint_still_finds_its_flow(write_repo) -> None:
    """With pull steps of its own, the entrypoint stays as written; the flow is still read."""
    repo = write_repo(
        {
            "pipelines/sales/job.py": HEADER + "@flow\ndef etl(day: int = 1): pass\n",
            "pipelines/sales/prefect.yaml": (
                "pull:\n  - prefect.deployments.steps.set_working_directory:\n"
                "      directory: /opt/sales\n"
                "deployments:\n  - name: daily\n    entrypoint: job.py:etl\n"
            ),
        }
    )
    [deployment] = discover(repo).deployments
    assert deployment.declared.entrypoint == "job.py:etl"
    assert deployment.declared.entrypoint_as_declared
    assert deployment.flow.entrypoint == "pipelines/sales/job.py:etl"
    assert list(deployment.flow.parameters["properties"]) == ["day"]


PREFECT_FILES = {
    "prefect.yaml": "deployments: []\n",
    "prefect.dev.yaml": "deployments: []\n",
    "pipelines/a/prefect-prod.yml": "deployments: []\n",
    "pipelines/b/prefect.yaml": "deployments: []\n",
    "pipelines/c/prefect_staging.yaml": "deployments: []\n",
    "deploy/values.yaml": "replicas: 2\n",
    "prefecture.yaml": "x: 1\n",
}


@pytest.mark.parametrize(
    ("patterns", "read", "hinted"),
    [
        pytest.param(
            None,
            ["pipelines/b/prefect.yaml", "prefect.yaml"],
            [
                "pipelines/a/prefect-prod.yml",
                "pipelines/c/prefect_staging.yaml",
                "prefect.dev.yaml",
            ],
            id="default",
        ),
        pytest.param(
            ("prefect.yaml", "**/prefect.*.yaml"),
            ["pipelines/b/prefect.yaml", "prefect.dev.yaml", "prefect.yaml"],
            ["pipelines/a/prefect-prod.yml", "pipelines/c/prefect_staging.yaml"],
            id="dotted-variants",
        ),
        pytest.param(
            ("/prefect.yaml", "pipelines/*/prefect[-_]*"),
            ["pipelines/a/prefect-prod.yml", "pipelines/c/prefect_staging.yaml", "prefect.yaml"],
            ["pipelines/b/prefect.yaml", "prefect.dev.yaml"],
            id="anchored",
        ),
    ],
)
def test_prefect_files_names_the_files_to_read(
    write_repo, patterns: tuple[str, ...] | None, read: list[str], hinted: list[str]
) -> None:
    repo = write_repo(PREFECT_FILES)
    config = RepositoryConfig() if patterns is None else RepositoryConfig(prefect_files=patterns)
    result = discover(repo, config)
    assert [f.path for f in result.prefect_yaml_files] == read
    assert [(p.file, p.code, p.severity) for p in result.problems] == [
        (rel, "prefect-file-not-read", "info") for rel in hinted
    ]
    assert "prefect_files" in result.problems[0].remedy


def test_prefect_files_from_deploy_manager_yaml(write_repo) -> None:
    repo = write_repo(
        {
            **PREFECT_FILES,
            "deploy-manager.yaml": "prefect_files: [prefect.yaml, '**/prefect[._-]*.y*ml']\n",
        }
    )
    result = discover(repo)
    assert len(result.prefect_yaml_files) == 5
    assert result.problems == ()


def test_a_kubernetes_manifest_named_prefect_yaml_does_not_hold_flows_back(write_repo) -> None:
    repo = write_repo(
        {
            "k8s/prefect.yaml": "apiVersion: v1\nkind: Service\n---\napiVersion: v1\nkind: Pod\n",
            "k8s/job.py": flow_file("k8s_job"),
        }
    )
    result = discover(repo)
    assert [d.flow.name for d in result.deployments] == ["k8s-job"]
    assert [(p.file, p.code) for p in result.problems] == [
        ("k8s/prefect.yaml", "not-a-prefect-yaml")
    ]


def test_a_file_above_max_file_bytes_is_skipped_with_a_warning_and_kept(write_repo) -> None:
    generated = "from prefect import flow\n@flow\ndef generated(): pass\n" + "X = 1\n" * 2000
    repo = write_repo({"a.py": FLOW.format("a"), "gen/big.py": generated})
    result = discover(repo, RepositoryConfig(max_file_bytes=10_000))
    assert [f.name for f in result.flows] == ["a"]
    (problem,) = [p for p in result.problems if p.code == "file-too-large"]
    assert (problem.file, problem.severity) == ("gen/big.py", "warning")
    assert "max_file_bytes (10,000)" in problem.message
    assert "gen/big.py" in result.failed_files  # its deployments are never pruned for it
    assert sorted(f.name for f in discover(repo).flows) == ["a", "generated"]
