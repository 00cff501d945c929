#!/usr/bin/env python3
"""List a user's Cronofy calendars with an access token from tokend.

Standard library only. Usage:

    TOKEND_KEY_FILE=client.key python3 calendars.py user-42

Environment (all optional):
    TOKEND_URL       tokend's address            (default http://127.0.0.1:7780)
    TOKEND_KEY       the client key itself, or
    TOKEND_KEY_FILE  a file holding it           (default ./client.key)
    CRONOFY_API      Cronofy's API host          (default https://api.cronofy.com)
"""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

TOKEND_URL = os.environ.get("TOKEND_URL", "http://127.0.0.1:7780").rstrip("/")
CRONOFY_API = os.environ.get("CRONOFY_API", "https://api.cronofy.com").rstrip("/")
# The token must stay valid for at least this long: the calls below fit in it.
MIN_TTL = 60


def client_key():
    key = os.environ.get("TOKEND_KEY")
    if key:
        return key.strip()
    with open(os.environ.get("TOKEND_KEY_FILE", "client.key")) as f:
        return f.read().strip()


def call(method, url, bearer, body=None):
    """(status, parsed JSON body) of one HTTP call."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", "Bearer " + bearer)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, {"error": "http_%d" % e.code, "message": text}


def tokend(method, path, key, body=None):
    """A tokend call; any error is fatal and says what tokend said."""
    status, answer = call(method, TOKEND_URL + path, key, body)
    if status != 200:
        sys.exit("tokend %s %s: %d %s: %s" % (method, path, status,
                                              answer.get("error"), answer.get("message")))
    return answer


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: calendars.py CREDENTIAL_ID")
    credential = urllib.parse.quote(sys.argv[1], safe="")
    key = client_key()

    token = tokend("GET", "/v1/tokens/%s?min_ttl=%d" % (credential, MIN_TTL), key)
    status, answer = call("GET", CRONOFY_API + "/v1/calendars", token["access_token"])
    if status == 401:
        # The provider refused this token (revoked, or expired early): ask
        # tokend for a new one, naming the refused token so that several
        # callers hitting the same 401 cause one refresh, not many.
        print("401 from the API: asking tokend for a new token", file=sys.stderr)
        token = tokend("POST", "/v1/tokens/%s/refresh" % credential, key,
                       {"rejected_token": token["access_token"]})
        status, answer = call("GET", CRONOFY_API + "/v1/calendars", token["access_token"])
    if status != 200:
        sys.exit("Cronofy API: HTTP %d: %s" % (status, answer))
    for calendar in answer["calendars"]:
        print("calendar: %s (%s)" % (calendar["calendar_name"], calendar["calendar_id"]))


if __name__ == "__main__":
    main()
