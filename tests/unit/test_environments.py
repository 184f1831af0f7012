"""deploy-manager.yaml: branch mapping, defaults, and errors that say where."""

from __future__ import annotations

import pytest

from control_plane.environments import (
    RepositoryConfig,
    parse_repository_config,
    read_repository_config,
    slugify_branch,
)
from control_plane.errors import ConfigError


@pytest.mark.parametrize(
    ("branch", "environment"),
    [
        ("main", "production"),
        ("master", "production"),
        ("develop", "staging"),
        ("feature/x", "preview"),
        (None, "production"),
    ],
)
def test_default_mapping(branch: str | None, environment: str) -> None:
    assert RepositoryConfig().environment_for(branch).name == environment


def test_first_matching_glob_wins_and_override() -> None:
    config = parse_repository_config(
        """
environments:
  hotfix:
    branches: ["hotfix/*"]
    name_pattern: "{flow}-{branch}"
  production:
    branches: ["*"]
    work_pool: {name: k8s, work_queue_name: high, job_variables: {cpu: 2}}
    prune: {max_fraction: 0.25}
"""
    )
    assert config.environment_for("hotfix/login").name == "hotfix"
    prod = config.environment_for("anything")
    assert (prod.work_pool.name, prod.work_pool.work_queue_name, prod.prune.max_fraction) == (
        "k8s",
        "high",
        0.25,
    )
    assert config.environment_for("hotfix/x", "production").name == "production"
    hotfix = config.environment_for("hotfix/a b")
    assert hotfix.render_name(name="d", flow="etl", branch="hotfix/a b") == "etl-hotfix-a-b"


def test_unknown_environment_override_lists_known() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown environment 'qa'.*production, staging, preview"
    ):
        RepositoryConfig().environment_for("main", "qa")


def test_no_matching_branch() -> None:
    config = parse_repository_config("environments:\n  production:\n    branches: [main]\n")
    with pytest.raises(ConfigError, match="branch 'dev' maps to no environment"):
        config.environment_for("dev")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "exclude: [a]\nprune_everything: true\n",
            r"deploy-manager.yaml:2: prune_everything: Extra",
        ),
        (
            "environments:\n  prod:\n    branches: [main]\n    name_pattern: '{nmae}'\n",
            r"deploy-manager.yaml:4: environments.prod.name_pattern: .*unknown field \{nmae\}",
        ),
        (
            "environments:\n  prod:\n    prune:\n      max_fraction: 2\n",
            r"deploy-manager.yaml:4: environments.prod.prune.max_fraction",
        ),
        ("environments: [a, b]\n", r"'environments' must map"),
        (
            "prefect_files: ['prefect.yaml', '\\']\n",
            r"deploy-manager.yaml:1: prefect_files: .* is not a gitignore-style pattern",
        ),
        ("exclude: [\n", r"deploy-manager.yaml:2: invalid YAML"),
        (  # a key YAML reads as a boolean is still found on its line
            "environments:\n  yes:\n    tags: 1\n",
            r"deploy-manager.yaml:3: environments.True.tags",
        ),
        (
            "environments:\n  p:\n    parameters: {x: &a [*a]}\n",
            r"deploy-manager.yaml: invalid YAML: an alias refers to a mapping or list that",
        ),
    ],
)
def test_config_errors_say_where(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_repository_config(text)


def test_bad_file_becomes_a_problem(tmp_path) -> None:
    (tmp_path / "deploy-manager.yaml").write_text("default_deployments: maybe\n")
    config, problems = read_repository_config(tmp_path)
    assert config == RepositoryConfig()
    assert [(p.file, p.line, p.code) for p in problems] == [
        ("deploy-manager.yaml", 1, "invalid-config")
    ]


@pytest.mark.parametrize(
    ("branch", "slug"),
    [("feature/New Thing", "feature-New-Thing"), ("///", "branch"), ("a.b_c", "a.b_c")],
)
def test_slugify_branch(branch: str, slug: str) -> None:
    assert slugify_branch(branch) == slug


def test_an_environment_that_is_not_a_mapping_is_a_problem_with_its_line(tmp_path) -> None:
    from control_plane.environments import read_repository_config

    (tmp_path / "deploy-manager.yaml").write_text("environments:\n  prod: [a]\n")
    config, problems = read_repository_config(tmp_path)
    (problem,) = problems
    where = (problem.file, problem.line, problem.code)
    assert where == ("deploy-manager.yaml", 2, "invalid-config")
    assert "environment 'prod' must be a mapping of settings, not list" in problem.message
    assert [e.name for e in config.environments] == [e.name for e in type(config)().environments]
