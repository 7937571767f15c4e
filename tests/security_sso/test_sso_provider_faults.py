"""When the identity provider itself fails, the page says what an admin should do."""

from __future__ import annotations

import time

import pytest

from tests.security_sso.conftest import open_sessions, sso_log
from tests.services.oidc import REFERRER

pytestmark = pytest.mark.oidc


@pytest.fixture
def app_config(idp) -> dict:
    return idp.app_config(OIDC_TIMEOUT_SECONDS=1)


def test_a_token_endpoint_that_does_not_answer_in_time_is_named(network, client, sso_sign_in,
                                                               idp):
    idp.stall(3)
    started = time.monotonic()

    answer = sso_sign_in(REFERRER)

    assert time.monotonic() - started < 2.9  # the app gave up at its 1 s timeout
    assert answer.status_code == 502
    assert f"the identity provider at {idp.issuer} did not answer within 1 s" in \
        answer.get_data(as_text=True)
    assert open_sessions() == 0
    assert sso_log()[-1][:2] == ("failure", "") and sso_log()[-1][2].startswith("timeout:")
