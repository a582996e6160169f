"""Rule validation: every mistake is named with file, line and keyword, and nothing half-loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.rules import RuleValidationError, load_rules


def rules_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    for name, body in files.items():
        (folder / name).write_text(body, encoding="utf-8")
    return folder


def problems(tmp_path: Path, files: dict[str, str]) -> list[str]:
    with pytest.raises(RuleValidationError) as caught:
        load_rules(rules_dir(tmp_path, files))
    return caught.value.problems


def test_an_unknown_code_is_named_with_file_and_line(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "D.yaml": "category: D\nsubcategories:\n  D01:\n    keywords:\n      井盖: 4\n  D99:\n"
            "    keywords:\n      路: 1\n"
        },
    )
    assert any("D.yaml:6" in p and "unknown subcategory code 'D99'" in p for p in found), found


def test_a_code_in_the_wrong_file_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, {"D.yaml": "category: D\nsubcategories:\n  E02:\n    keywords:\n      噪音: 4\n"})
    assert any("E02 belongs in E.yaml" in p for p in found)


def test_a_malformed_pattern_is_named(tmp_path: Path) -> None:
    found = problems(tmp_path, {"_common.yaml": "nonreport:\n  greeting:\n    - '^(你好'\n"})
    assert any("_common.yaml:3" in p and "malformed pattern" in p for p in found), found


def test_a_repeated_pattern_kind_is_refused_instead_of_silently_replacing_the_first(tmp_path: Path) -> None:
    common = "nonreport_always:\n  ad:\n    - '加微信'\n  forward:\n    - '阅读原文'\n  ad:\n    - '详询'\n"
    found = problems(tmp_path, {"_common.yaml": common})
    assert any("_common.yaml:6" in p and "'ad' appears twice (first at line 2)" in p for p in found), found


def test_a_keyword_claimed_by_two_subcategories_names_both_places(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "A.yaml": "category: A\nsubcategories:\n  A01:\n    keywords:\n      漏水: 2\n",
            "D.yaml": "category: D\nsubcategories:\n  D05:\n    keywords:\n      停水: 4\n      漏水: 2\n",
        },
    )
    assert any("D.yaml:6" in p and "'漏水'" in p and "A01 (A.yaml:5)" in p for p in found), found


def test_a_shared_declaration_allows_two_claims(tmp_path: Path) -> None:
    folder = rules_dir(
        tmp_path,
        {
            "A.yaml": "category: A\nshared:\n  漏水: [A01, D05]\n"
            "subcategories:\n  A01:\n    keywords:\n      漏水: 2\n",
            "D.yaml": "category: D\nsubcategories:\n  D05:\n    keywords:\n      漏水: 2\n",
        },
    )
    rules = load_rules(folder)
    assert sorted(k.subcategory for k in rules.keywords if k.text == "漏水") == ["A01", "D05"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("category: D\nsubcategories:\n  D01:\n    keywords:\n      井盖: heavy\n", "D.yaml:5: D01 keyword '井盖'"),
        ("category: D\nsubcategories:\n  D01:\n    keywords:\n      井盖: 0\n", "weight must be a number"),
        ("category: D\nsubcategories:\n  D01:\n    keywords:\n      井盖: 99\n", "weight must be a number"),
        ("category: D\nsubcategories:\n  D01:\n    exclude:\n      井: [冈山路]\n", "'冈山路' does not contain"),
        (
            "category: D\nsubcategories:\n  D01:\n    combos:\n      - words: [井盖]\n        weight: 2\n",
            "at least two words",
        ),
        ("category: D\nsubcategories:\n  D01:\n    kewords:\n      井盖: 4\n", "unknown section 'kewords'"),
        ("category: D\nsubcategories:\n  D01:\n    keywords:\n      井盖: 4\n      井盖: 3\n", "listed twice"),
        (
            "category: D\nsubcategories:\n  D01:\n    keywords:\n      井盖: 4\n  D01:\n    keywords:\n      窨井: 4\n",
            "D.yaml:6: subcategories: 'D01' appears twice (first at line 3)",
        ),
        ("category: E\nsubcategories: {}\n", "does not match the file name"),
        ("category: D\nsubcategories:\n  D01: [井盖\n", "not valid YAML"),
    ],
)
def test_each_kind_of_mistake_is_explained(tmp_path: Path, body: str, fragment: str) -> None:
    found = problems(tmp_path, {"D.yaml": body})
    assert any(fragment in p for p in found), found


def test_a_file_for_no_category_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, {"Z.yaml": "category: Z\n"})
    assert any("does not name a category" in p for p in found)


def test_the_taxonomy_copy_matches_the_shared_spec() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "taxonomy.yaml"
    if not shared.is_file():
        pytest.skip("shared/ is not beside this checkout")
    from classifier.taxonomy import TAXONOMY_FILE

    assert TAXONOMY_FILE.read_text(encoding="utf-8") == shared.read_text(encoding="utf-8")
