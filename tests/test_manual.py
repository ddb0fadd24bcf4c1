"""The procedures manual (oohcore.procedure.manual; audit item 1, 15-16; spec 5.3.1, 11.11.1h).

The manual is generated from a copy of the test borough with one option signed off, so the
front page shows both states; it is checked for what a council officer signs (versions,
sign-off, script texts, contact numbers from the directory, escalation) and rendered in a real
headless Chromium, whose screenshot must not be blank, and printed to PDF.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from chromium_support import assert_renders, chromium
from oohcore import directory
from oohcore.cli import main
from oohcore.clock import ManualClock
from oohcore.procedure.manual import manual_html
from oohcore.rulesets.compiler import Organisation
from oohcore.rulesets.loader import load_organisation
from oohcore.store import Store

RULESETS = Path(__file__).parent / "rulesets"
CATALOGUE = RULESETS / "catalogue"
DAY = date(2026, 12, 2)


@pytest.fixture
def borough(tmp_path: Path) -> Path:
    folder = tmp_path / "borough"
    shutil.copytree(RULESETS / "borough", folder)
    version = load_organisation(folder, catalogue=CATALOGUE).service_options["helpline"].version
    helpline = folder / "options/helpline.yaml"
    helpline.write_text(
        helpline.read_text() + f"sign_off: {{by: A. Officer, on: 2026-11-20, version: {version}}}\n"
    )
    return folder


def org_of(folder: Path) -> Organisation:
    return load_organisation(folder, catalogue=CATALOGUE)


def test_the_front_page_lists_every_option_with_version_and_sign_off(borough: Path) -> None:
    org = org_of(borough)
    page = manual_html(org, generated=DAY)
    front = page[: page.index('<section class="option"')]
    for option in org.service_options.values():
        assert option.version in front and option.name in front
    assert "signed off by A. Officer on 2026-11-20" in front
    assert front.count("NOT signed off") == 1  # repairs
    assert f"Organisation version <code>{org.version}</code>" in front
    assert "generated 2026-12-02" in front


def test_each_option_carries_its_script_flowchart_decision_and_contacts(borough: Path) -> None:
    org = org_of(borough)
    page = manual_html(org, generated=DAY)
    helpline = page[page.index('id="helpline"') :]
    helpline = helpline[: helpline.index("</section>")]
    assert "What is your call about?" in helpline  # the script as the handler sees it
    assert "<svg" in helpline and "rule1" in helpline  # the flowchart, inline
    assert "Building security desk: 020 7946 0999 (24 hours a day)" in helpline  # directory
    assert "<td>default</td><td>no rule holds</td><td>give-advice</td>" in helpline
    assert "Duty officer holds the call" in helpline
    assert helpline.count(org.service_options["helpline"].version) >= 2  # top and foot


def test_the_living_directory_overrides_the_files(borough: Path, tmp_path: Path) -> None:
    """2.3.3: a number changed in the store is the one printed, with no new sign-off."""
    org = org_of(borough)
    at = datetime(2026, 12, 1, 9, tzinfo=UTC)
    store = Store.open(f"sqlite:///{tmp_path / 'm.sqlite'}", clock=ManualClock(at))
    try:
        with store.transaction() as conn:
            directory.seed(conn, org.id, org.directory, at=at)
            directory.change(
                conn, org.id, "security-desk", by="D. Clerk", at=at, number="020 7946 0123"
            )
        with store.read() as conn:
            living = {c.id: c for c in directory.entries(conn, org.id)}
    finally:
        store.close()
    page = manual_html(org, generated=DAY, directory=living)
    assert "020 7946 0123" in page and "020 7946 0999" not in page


def test_the_manual_renders_in_headless_chromium(
    borough: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "manual.html"
    assert main(["manual", str(borough), "--catalogue", str(CATALOGUE), "--out", str(page)]) == 0
    assert capsys.readouterr().out.strip() == str(page)
    assert_renders(page, tmp_path)


def test_the_manual_prints_to_pdf(borough: Path, tmp_path: Path) -> None:
    chromium()
    out = tmp_path / "manual.pdf"
    args = ["manual", str(borough), "--catalogue", str(CATALOGUE), "--format", "pdf"]
    assert main([*args, "--out", str(out)]) == 0
    data = out.read_bytes()
    assert data[:5] == b"%PDF-" and data.count(b"/Type /Page") >= 3  # front page + 2 options


def test_an_unknown_organisation_is_a_message_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["manual", "nowhere", "--rulesets", str(RULESETS / "borough")]
    assert main([*args, "--catalogue", str(CATALOGUE)]) == 1
    assert "no organisation 'nowhere'" in capsys.readouterr().err


def test_the_manual_is_regenerated_byte_for_byte(borough: Path) -> None:
    """Same rulesets, same day: the same manual, so a diff of two manuals shows real changes."""
    org = org_of(borough)
    assert manual_html(org, generated=DAY) == manual_html(org_of(borough), generated=DAY)
