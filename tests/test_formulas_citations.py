"""Every citation of the formula reference resolves, and nothing cites a document outside the repository.

Code, docstrings, notebooks and documentation cite ``docs/formulas.md`` as "formulas §N.M"
(lists and ranges such as "formulas §2.5, 3.1" or "formulas §2.2-2.4" included), often
followed by bracketed formula ids ("formulas §2.4 [B-pos-mse]", "formulas §3.1, pitfall
C4a") or a sizing rule ("formulas §8.2 rule (a)"). These tests parse the section headings
and the ids of the formula page and fail on a citation that names a section that does not
exist, or an id (or rule) that does not appear in the cited sections. They also fail on any
reference to the project's internal notes (design, style, theory and team notes, research
files, the shared folder), which are not part of the repository.

Each parser has a negative control: a made-up citation that must be reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORMULAS = ROOT / "docs" / "formulas.md"
#: Where citations live; generated and cached folders are skipped.
SCANNED_DIRS = ("favor", "theory", "notebooks", "benchmarks", "docs", "tests")
SCANNED_FILES = ("README.md",)
SUFFIXES = {".py", ".md", ".rst", ".txt", ".ipynb"}
SKIPPED_PARTS = {"_build", "generated", "_generated", "__pycache__", ".ipynb_checkpoints"}

_SECTION = r"\d+(?:\.\d+)?"
#: "formulas §2.5, 3.1", "formulas §2.2-2.4", "formulas §2-3, 5".
#: A number after a comma that is followed by a word ("§8.2, 20000 trials") is not a section.
CITATION = re.compile(
    rf"formulas §(?P<sections>{_SECTION}"
    rf"(?:\s*[-–]\s*{_SECTION}|\s*,\s*{_SECTION}(?![\d.]*\s*(?:[a-z]|%)))*)"
    r"(?=(?P<tail>[^\n]{0,120}))"  # a lookahead: the next citation may start inside the tail
)
#: What may follow the sections: "[A4]", ", [K1-mean]", "[C3a, C3b]", ", pitfall C4a", " rule (a)".
BRACKETED_IDS = re.compile(r"^[,;:]?\s*\[(?P<ids>[^\]\n]{1,60})\]")
PITFALL = re.compile(r"^[,;:]?\s*pitfall (?P<id>[A-Z]\d+[a-z]?)\b")
RULE = re.compile(r"^[,;:]?\s*rule \((?P<rule>[a-z])\)")
ID_TOKEN = re.compile(r"[A-Z]\d*[a-z]?(?:-[A-Za-z0-9<*]+)*")
HEADING = re.compile(r"^#{2,3} (?P<number>\d+(?:\.\d+)?)[. ]", re.MULTILINE)
#: References to documents that are not in the repository (the project's internal notes).
FORBIDDEN = re.compile(
    r"\b(?:DESIGN|STYLE|THEORY|TEAM)\b|(?<![\w-])research/|\.\./shared\b|/work/shared\b"
    r"|\b(?:performance-anchors|performer-implementations|kernel-approximation-libraries)\.md\b"
)


@dataclass(frozen=True)
class Reference:
    """The sections of the formula page and the text of each (a section includes its subsections)."""

    order: tuple[str, ...]
    text: dict[str, str]

    @classmethod
    def parse(cls, source: str) -> Reference:
        heads = list(HEADING.finditer(source))
        order = tuple(h.group("number") for h in heads)
        text: dict[str, str] = {}
        for i, head in enumerate(heads):
            number = head.group("number")
            end = len(source)
            for later in heads[i + 1 :]:
                other = later.group("number")
                if "." in number or not other.startswith(number + "."):
                    end = later.start()
                    break
            text[number] = source[head.start() : end]
        return cls(order, text)

    def span(self, first: str, last: str) -> list[str]:
        """The sections from ``first`` to ``last`` in page order (both must exist)."""
        i, j = self.order.index(first), self.order.index(last)
        return list(self.order[min(i, j) : max(i, j) + 1])


def defined_ids(text: str) -> set[str]:
    """Ids defined in a piece of the formula page: bracketed groups and "pitfall X"."""
    text = text.replace(r"\*", "*")
    ids = set()
    for group in re.findall(r"\[([A-Z][^\]\[\n]{0,60})\]", text):
        for token in re.split(r",\s*|/", group):
            token = token.strip()
            if ID_TOKEN.fullmatch(token):
                ids.add(token)
                ids.update(
                    token.split("-")
                    if re.fullmatch(r"[A-Z]\d+[a-z]?-[A-Z]\d+[a-z]?", token)
                    else ()
                )
    ids.update(re.findall(r"[Pp]itfall ([A-Z]\d*[a-z]?)", text))
    return ids


def _flatten(text: str) -> str:
    """Join wrapped comment and docstring lines so a citation split over lines reads as one."""
    return re.sub(r"[ \t]*\n[ \t]*(?:#+[ \t]?)?[ \t]*", " ", text)


def citation_problems(text: str, reference: Reference) -> list[str]:
    """Every citation in ``text`` that does not resolve, as a readable message."""
    problems = []
    for match in CITATION.finditer(_flatten(text)):
        cited = match.group(0)[: len("formulas §") + len(match.group("sections"))]
        sections: list[str] = []
        for item in re.split(r"\s*,\s*", match.group("sections")):
            ends = re.split(r"\s*[-–]\s*", item)
            missing = [e for e in ends if e not in reference.text]
            if missing:
                problems.append(f"{cited!r}: no section {', '.join(missing)} in docs/formulas.md")
                continue
            sections += reference.span(ends[0], ends[-1]) if len(ends) == 2 else ends
        if not sections:
            continue
        body = "".join(reference.text[s] for s in sections)
        tail = match.group("tail")
        ids: list[str] = []
        if found := BRACKETED_IDS.match(tail):
            ids = [t.strip() for t in re.split(r",\s*|/", found.group("ids"))]
            ids = [t for t in ids if ID_TOKEN.fullmatch(t)]
        elif found := PITFALL.match(tail):
            ids = [found.group("id")]
        known = defined_ids(body)
        problems += [
            f"{cited!r}: no id [{i}] in section(s) {', '.join(sections)}"
            for i in ids
            if i not in known
        ]
        if (rule := RULE.match(tail)) and f"({rule.group('rule')})" not in body:
            problems.append(
                f"{cited!r}: no rule ({rule.group('rule')}) in section(s) {', '.join(sections)}"
            )
    return problems


def _scanned_files() -> list[Path]:
    files = [ROOT / name for name in SCANNED_FILES if (ROOT / name).exists()]
    for folder in SCANNED_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file() and not SKIPPED_PARTS & set(path.parts):
                files.append(path)
    return files


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference.parse(FORMULAS.read_text(encoding="utf-8"))


def test_formula_page_has_the_cited_structure(reference: Reference) -> None:
    # The sections the code base has always cited, and ids that docstrings rely on.
    for number in (
        "0",
        "1.1",
        "1.2",
        "1.3",
        "1.4",
        "2.4",
        "2.5",
        "3.1",
        "3.2",
        "3.3",
        "4.2",
        "5",
        "6.6",
        "8.2",
    ):
        assert number in reference.text, f"docs/formulas.md lost section {number}"
    ids = defined_ids(FORMULAS.read_text(encoding="utf-8"))
    for formula_id in ("A4", "B-pos-mse", "B-hyp<pos2m", "C1-mse", "C4a", "K1-mean", "I3", "L1"):
        assert formula_id in ids, f"docs/formulas.md lost the id [{formula_id}]"
    # Subsections are nested in their section, and a subsection stops at the next heading.
    assert "### 2.4" in reference.text["2"]
    assert "### 2.5" not in reference.text["2.4"]


def test_every_formulas_citation_resolves(reference: Reference) -> None:
    problems = []
    n_citations = 0
    for path in _scanned_files():
        if path.resolve() == Path(__file__).resolve():
            continue  # its negative controls are deliberately broken citations
        text = path.read_text(encoding="utf-8", errors="replace")
        n_citations += len(CITATION.findall(_flatten(text)))
        problems += [f"{path.relative_to(ROOT)}: {p}" for p in citation_problems(text, reference)]
    assert n_citations > 100, (
        f"only {n_citations} citations found: is the scan pointed at the code?"
    )
    assert not problems, "unresolved formula citations:\n" + "\n".join(problems)


def test_formula_page_cross_references_resolve(reference: Reference) -> None:
    text = FORMULAS.read_text(encoding="utf-8")
    cross = re.findall(r"§(\d+(?:\.\d+)?)", text)
    assert cross, "the formula page has no cross-references to check"
    assert not [c for c in cross if c not in reference.text], "dangling §N in docs/formulas.md"


def test_citation_checker_reports_bad_citations(reference: Reference) -> None:
    """Negative controls: each kind of broken citation is reported; good ones are not."""
    good = (
        "see formulas §2.4 [B-pos-mse] and formulas §3.1, pitfall C4a; (formulas §2.5, 3.1 [C3a, C3b]);\n"
        "    # formulas §2.2-2.4, [B-feat] and formulas §8.2 rule (a) and formulas §4.1-4.2 [L1];\n"
        "    (formulas §5,\n    [K1-mean]) and formulas §2.4 [B-hyp-mse, B-hyp<pos2m]"
    )
    assert citation_problems(good, reference) == []
    bad: dict[str, str] = {
        "formulas §8.7": "no section 8.7",
        "formulas §2.4-11.2": "no section 11.2",
        "formulas §1.1, 42": "no section 42",
        "formulas §2.4 [C4a]": "no id [C4a]",
        "formulas §2.4, [Q9-mse]": "no id [Q9-mse]",
        "formulas §3.2, pitfall C4a": "no id [C4a]",
        "formulas §3.2 rule (a)": "no rule (a)",
        "formulas §2.2-2.3 [B-pos-mse]": "no id [B-pos-mse]",
    }
    for text, expected in bad.items():
        problems = citation_problems(text, reference)
        assert len(problems) == 1, (text, problems)
        assert expected in problems[0], (text, problems)


def test_nothing_cites_documents_outside_the_repository() -> None:
    this_file = Path(__file__).resolve()
    hits = []
    for path in _scanned_files():
        if path.resolve() == this_file:
            continue
        for number, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        ):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "references to documents outside the repository:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    "line",
    [
        # Built by concatenation so that this file itself cites nothing outside the repository.
        "(THEO" + "RY 2.4)",
        "see DES" + "IGN 3",
        "STY" + "LE 4.6 says",
        "TE" + "AM notes",
        "../shared/x",
        "research/ORF.md",
        "(performance-anch" + "ors.md section 2)",
    ],
)
def test_outside_reference_pattern_catches(line: str) -> None:
    assert FORBIDDEN.search(line)


@pytest.mark.parametrize(
    "line", ["google-research/google-research", "the theory package", "design.md"]
)
def test_outside_reference_pattern_spares(line: str) -> None:
    assert not FORBIDDEN.search(line)
