"""A Django site that serves modeld's status page behind the admin's login, for the browser
test (tests/integration/test_status_page_browser.py). Configured by the environment:

    STATUS_SITE_DB       the SQLite file of its users
    STATUS_SITE_MODELD   settings.MODELD, as JSON
"""
