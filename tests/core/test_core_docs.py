"""The documentation of the presets and modes stays in step with ppo_core."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from app.runs.formats import FORMATS
from app.runs.metric_map import ALIASES, CANONICAL
from ppo_core import findings
from ppo_core.aggregation import LOSS_AGG_MODES
from ppo_core.conventions import CONVENTIONS
from ppo_core.policy import POLICY_LOSS_MODES

ROOT = Path(__file__).resolve().parents[2]
FAMILY = (ROOT / "docs" / "family.md").read_text()
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", [n for n in CONVENTIONS if "-" in n])
def test_every_family_preset_is_documented_with_its_mode(name: str) -> None:
    rows = [line for line in FAMILY.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, name
    mode = CONVENTIONS[name].policy_loss_mode
    assert rows[0].split("|")[2].strip().startswith(mode), (name, mode)
    assert name.split("-", 1)[1].split("_")[0] in README, name


@pytest.mark.parametrize("mode", POLICY_LOSS_MODES)
def test_every_mode_has_a_formula_row(mode: str) -> None:
    assert any(line.startswith(f"| `{mode}`") for line in FAMILY.splitlines()), mode


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_every_aggregation_mode_is_documented(mode: str) -> None:
    assert f"| `{mode}` |" in FAMILY and f"`{mode}`" in README


INSPECTOR = (ROOT / "docs" / "inspector.md").read_text()


def test_every_finding_code_is_documented() -> None:
    source = inspect.getsource(findings.batch_findings)
    codes = set(re.findall(r'"([a-z_]+)",\n\s+"(?:info|warning|error)"', source))
    codes |= {"zero_std_groups"}  # its severity is a variable
    assert len(codes) == 10, codes
    for code in codes:
        assert f"| `{code}` |" in INSPECTOR, code
        assert f"``{code}``" in findings.__doc__, code


RUNS = (ROOT / "docs" / "runs.md").read_text()


def test_the_run_report_docs_list_every_alias_format_and_finding() -> None:
    for fmt in FORMATS:
        assert f"| `{fmt}` |" in RUNS, fmt
    for name in CANONICAL:
        assert f"| `{name}` |" in RUNS, name
    for alias in ALIASES:
        if alias.library != "any":
            assert f"`{alias.name}`: {alias.formula}" in RUNS, alias.name
    for code in (
        "entropy_collapse", "kl_spike", "clip_fraction_zero", "clip_fraction_high", "nonfinite",
        "explained_variance_negative", "reward_up_kl_runaway", "length_at_cap",
    ):  # fmt: skip
        assert f"| `{code}` |" in RUNS, code
