"""The load test's users (run by bench/bench_load.py; `make load`).

    locust -f bench/load/locustfile.py --headless --host http://127.0.0.1:PORT

LOAD_FIXTURE names a JSON file bench_load.py wrote: API tokens per person, referral ids
with linked images and their frame URLs, the Twilio auth token, PUBLIC_BASE_URL and
the provider SIDs of pages already sent (for the status callbacks).

Who: referrers raising and polling; specialists listing, opening, accepting and
viewing images; an audit lead on the dashboard and the CSV export; Twilio sending
status callbacks at about 20 a second in all (signed, so that they verify).
"""

from __future__ import annotations

import json
import os
import random
import re
from datetime import UTC, datetime, timedelta

from locust import HttpUser, between, constant_throughput, task
from twilio.request_validator import RequestValidator

with open(os.environ["LOAD_FIXTURE"]) as _file:
    FIXTURE = json.load(_file)
WEBHOOK_USERS = int(FIXTURE.get("webhook_users", 4))
WEBHOOKS_PER_SECOND = float(FIXTURE.get("webhooks_per_second", 20))


def _payload() -> dict:
    arrived = (datetime.now(UTC) - timedelta(minutes=30)).replace(microsecond=0)
    return {
        "specialty": "stroke", "referring_hospital": "PIL",
        "patient": {"nhs_number": "9434765919", "family_name": "Smith", "given_name": "Ann",
                    "birth_date": "1950-01-01", "sex": "female"},
        "onset_at": None, "onset_certainty": "unknown", "arrived_at": arrived.isoformat(),
        "question": "Thrombectomy? (load test)",
        # one patient raised again and again: each a separate referral on purpose
        "separate_referral": True,
        "clinical": {"nihss": 14, "pre_stroke_mrs": 1, "anticoagulant": "none",
                     "thrombolysis_given": False, "imaging": ["CT", "CTA"]},
    }


class Referrer(HttpUser):
    """Raises a referral now and then and polls the ones it raised."""

    weight = 5
    wait_time = between(1, 3)

    def on_start(self):
        self.headers = {"Authorization": f"Bearer {FIXTURE['tokens']['referrer']}"}
        self.mine: list[int] = []

    @task(1)
    def raise_referral(self):
        with self.client.post("/api/v1/referrals", json=_payload(), headers=self.headers,
                              name="referrer: raise", catch_response=True) as answer:
            if answer.status_code == 201:
                self.mine = (self.mine + [answer.json()["id"]])[-10:]
            else:
                answer.failure(f"HTTP {answer.status_code}")

    @task(6)
    def poll(self):
        if self.mine:
            self.client.get(f"/api/v1/referrals/{random.choice(self.mine)}",
                            headers=self.headers, name="referrer: poll referral")


class Specialist(HttpUser):
    """Lists what awaits the hub, opens referrals, accepts some, looks at images."""

    weight = 3
    wait_time = between(1, 3)

    def on_start(self):
        who = random.choice(FIXTURE["specialists"])
        self.headers = {"Authorization": f"Bearer {FIXTURE['tokens'][who]}"}
        self.waiting: list[int] = []

    @task(3)
    def worklist(self):
        answer = self.client.get("/api/v1/referrals?state=awaiting_specialist",
                                 headers=self.headers, name="specialist: worklist")
        if answer.status_code == 200:
            self.waiting = [r["id"] for r in answer.json()["referrals"]][:20]

    @task(3)
    def open_referral(self):
        choices = self.waiting or FIXTURE["image_referrals"]
        if choices:
            self.client.get(f"/api/v1/referrals/{random.choice(choices)}", headers=self.headers,
                            name="specialist: open referral")

    @task(1)
    def accept(self):
        if not self.waiting:
            return
        referral_id = self.waiting.pop(random.randrange(len(self.waiting)))
        with self.client.post(f"/api/v1/referrals/{referral_id}/acknowledge", json={},
                              headers=self.headers, name="specialist: accept",
                              catch_response=True) as answer:
            if answer.status_code in (200, 409):  # 409: a colleague accepted it first
                answer.success()
            else:
                answer.failure(f"HTTP {answer.status_code}")

    @task(4)
    def image(self):
        if FIXTURE["frames"]:
            self.client.get(random.choice(FIXTURE["frames"]), headers=self.headers,
                            name="specialist: image frame")


class AuditLead(HttpUser):
    """Signs in with a browser session and reads the dashboard; exports now and then."""

    weight = 1
    fixed_count = 1
    wait_time = between(5, 10)

    def on_start(self):
        page = self.client.get("/login", name="audit: sign in page").text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        self.client.post("/login", name="audit: sign in", data={
            "csrf_token": token, "email": FIXTURE["audit_email"],
            "password": FIXTURE["password"]})

    @task(5)
    def dashboard(self):
        self.client.get("/audit/", name="audit: dashboard")

    @task(1)
    def export(self):
        self.client.get("/audit/export/referrals.csv", name="audit: referrals CSV")


class TwilioCallbacks(HttpUser):
    """Twilio's status callbacks for pages already sent, signed as Twilio signs them."""

    fixed_count = WEBHOOK_USERS
    wait_time = constant_throughput(WEBHOOKS_PER_SECOND / WEBHOOK_USERS)

    def on_start(self):
        self.validator = RequestValidator(FIXTURE["twilio_auth_token"])

    @task
    def status_callback(self):
        delivery_id, sid = random.choice(FIXTURE["sent"])
        path = f"/webhooks/twilio/status?delivery={delivery_id}"
        form = {"MessageSid": sid, "MessageStatus": "delivered",
                "AccountSid": FIXTURE["twilio_account_sid"]}
        signature = self.validator.compute_signature(FIXTURE["public_base_url"] + path, form)
        self.client.post(path, data=form, headers={"X-Twilio-Signature": signature},
                         name="twilio: status callback")
