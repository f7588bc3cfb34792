"""The demo in a real browser: Playwright drives Debian's chromium against `python -m websession demo`.

Screenshots of every step land in test-artifacts/browser/ (CI keeps them when a run fails).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from .server import demo_process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


def session_cookie(context: BrowserContext, base: str) -> str | None:
    values = [c["value"] for c in context.cookies(base) if c["name"] == "__session"]
    return values[0] if values else None


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `python3 scripts/test.py`, which installs Debian's chromium")
    return CHROMIUM


def test_sign_in_flash_counter_cart_sign_out_in_chromium(chromium, tmp_path):
    expect.set_options(timeout=20_000)
    with demo_process(tmp_path / "demo") as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=base)
            page = context.new_page()

            page.goto("/")
            expect(page.locator("#visits")).to_have_text("1")
            expect(page.locator("#sign-in")).to_be_visible()
            before_sign_in = session_cookie(context, base)
            assert before_sign_in is not None
            assert "__session" not in page.evaluate("document.cookie")  # HttpOnly
            shot(page, "01-first-visit")

            page.fill("input[name=username]", "ada")
            page.click("#sign-in")
            expect(page.locator("#notice")).to_contain_text("Welcome, ada")
            expect(page.locator("#user")).to_have_text("ada")
            expect(page.locator("#visits")).to_have_text("2")
            signed_in = session_cookie(context, base)
            assert signed_in is not None and signed_in != before_sign_in  # a new id at sign-in
            shot(page, "02-signed-in-with-flash")

            page.reload()
            expect(page.locator("#visits")).to_have_text("3")
            expect(page.locator("#notice")).to_have_count(0)  # the flash showed once
            expect(page.locator("#user")).to_have_text("ada")
            shot(page, "03-reloaded")

            page.click("#add-tea")
            expect(page.locator("#cart")).to_contain_text("Tea")
            page.click("#add-cake")
            expect(page.locator("#cart")).to_contain_text("Cake")
            page.click("#add-tea")
            expect(page.locator("#cart li")).to_have_text(["Tea\u00d7 2", "Cake\u00d7 1"])
            shot(page, "04-cart")

            page.goto("/session")
            expect(page.locator("#record")).to_contain_text('"user": "ada"')
            expect(page.locator("#record")).to_contain_text('"Tea": 2')
            shot(page, "05-inspector")

            page.goto("/")
            expect(page.locator("#visits")).to_have_text("7")  # each cart form redirects home
            old_cookie = session_cookie(context, base)
            assert old_cookie is not None
            page.click("#sign-out")
            expect(page.locator("#notice")).to_contain_text("Signed out")
            expect(page.locator("#sign-in")).to_be_visible()
            assert session_cookie(context, base) != old_cookie
            shot(page, "06-signed-out")

            # Put the signed-in cookie back, as a thief who copied it would: it no longer works.
            context.clear_cookies()
            context.add_cookies([{"name": "__session", "value": old_cookie, "url": base}])
            page.goto("/")
            expect(page.locator("#sign-in")).to_be_visible()
            expect(page.locator("#user")).to_have_count(0)
            expect(page.locator("#visits")).to_have_text("1")
            expect(page.locator("#cart")).to_contain_text("empty")
            assert session_cookie(context, base) != old_cookie
            shot(page, "07-old-cookie-rejected")
        finally:
            browser.close()


def test_your_devices_in_two_browsers(chromium, tmp_path):
    """Sign in from two browsers (two contexts: two cookie jars), see both on "your devices",
    sign one out from the other."""
    expect.set_options(timeout=20_000)
    with demo_process(tmp_path / "demo") as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            laptop = browser.new_context(base_url=base).new_page()
            phone = browser.new_context(
                base_url=base, user_agent="Mozilla/5.0 (Linux; Android 14) Chrome/130.0 Mobile"
            ).new_page()
            for page in (laptop, phone):
                page.goto("/")
                page.fill("input[name=username]", "ada")
                page.click("#sign-in")
                expect(page.locator("#user")).to_have_text("ada")
            laptop.goto("/devices")
            expect(laptop.locator("tr.device")).to_have_count(2)
            expect(laptop.locator("tr.device.current")).to_have_count(1)
            expect(laptop.locator("#devices")).to_contain_text("Chrome on Android")
            shot(laptop, "20-devices-two-browsers")
            phone.goto("/devices")
            expect(phone.locator("tr.device")).to_have_count(2)

            laptop.locator("tr.device:not(.current) button").click()
            expect(laptop.locator("#notice")).to_contain_text("That device is signed out.")
            expect(laptop.locator("tr.device")).to_have_count(1)
            shot(laptop, "21-devices-one-signed-out")

            phone.goto("/")
            expect(phone.locator("#sign-in")).to_be_visible()  # the phone was signed out
            expect(phone.locator("#user")).to_have_count(0)
            shot(phone, "22-phone-signed-out")
            laptop.goto("/")
            expect(laptop.locator("#user")).to_have_text("ada")
        finally:
            browser.close()
