"""Fixtures shared by the workflow tests."""

import pytest

from workflow.seed import DEMO_PASSWORD


@pytest.fixture
def login(app, network):
    """login(email) -> a client of its own, signed in with the demo password."""

    def sign_in(email):
        client = app.test_client()
        response = client.login(email, DEMO_PASSWORD)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return sign_in
