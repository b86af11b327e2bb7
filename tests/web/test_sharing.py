"""Sharing from the page: alice grants bob read on a dataset and bob, logged in in a
second browser context, sees it; she revokes it and it is gone from his page. The audit
trail shows both changes."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.conftest import Browse, screenshot


def test_grant_then_revoke_read_on_a_dataset(browse: Browse) -> None:
    alice = browse.login("alice")
    bob_context = browse.context.browser.new_context()  # his own sessionStorage
    try:
        bob = Browse(browse.site, bob_context).login("bob")
        expect(bob.locator("main")).to_contain_text("You may read no dataset yet")

        alice.get_by_role("navigation").get_by_role("link", name="Sharing").click()
        alice.get_by_label("Dataset or Analysis").select_option("dataset:site-c")
        alice.get_by_label("User", exact=True).fill("bob")
        alice.get_by_label("Right", exact=True).select_option("read")
        alice.get_by_role("button", name="Grant", exact=True).click()
        expect(alice.locator(".share-form .outcome")).to_have_text("Granted read on dataset:site-c to bob.")
        holders = alice.get_by_role("region", name="Rights on dataset site-c")
        expect(holders.get_by_role("row").filter(has_text="bob")).to_contain_text("read")
        expect(alice.get_by_role("region", name="Audit trail of site-c, newest first")).to_contain_text("grant")
        screenshot(alice, "sharing")

        bob.reload()
        expect(bob.get_by_role("heading", name="site-c", level=2)).to_be_visible()
        expect(bob.get_by_role("heading", name="site-a", level=2)).to_have_count(0)

        holders.get_by_role("button", name="Revoke read from bob").click()
        expect(alice.locator(".share-form .outcome")).to_have_text("Revoked read on dataset:site-c from bob.")
        expect(holders.get_by_role("row").filter(has_text="bob")).to_have_count(0)
        bob.reload()
        expect(bob.locator("main")).to_contain_text("You may read no dataset yet")
        expect(bob.get_by_role("heading", name="site-c")).to_have_count(0)
    finally:
        bob_context.close()
