#!/usr/bin/env python3
"""List a user's Cronofy calendars through tokend's API proxy.

The program never holds an access token: tokend attaches it, and on a 401
from Cronofy refreshes it and resends the request itself. Standard library
only. Usage:

    TOKEND_KEY_FILE=client.key python3 calendars.py user-42

Environment (all optional):
    TOKEND_URL       tokend's address            (default http://127.0.0.1:7780)
    TOKEND_KEY       the client key itself, or
    TOKEND_KEY_FILE  a file holding it           (default ./client.key)
"""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

TOKEND_URL = os.environ.get("TOKEND_URL", "http://127.0.0.1:7780").rstrip("/")


def client_key():
    key = os.environ.get("TOKEND_KEY")
    if key:
        return key.strip()
    with open(os.environ.get("TOKEND_KEY_FILE", "client.key")) as f:
        return f.read().strip()


def proxy(method, credential, path, key):
    """(status, headers, parsed JSON body) of one call through the proxy."""
    url = "%s/v1/proxy/%s/%s" % (TOKEND_URL, urllib.parse.quote(credential, safe=""), path)
    request = urllib.request.Request(url, method=method)
    request.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.load(response)
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        try:
            return e.code, e.headers, json.loads(text)
        except ValueError:
            return e.code, e.headers, {"error": "http_%d" % e.code, "message": text}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: calendars.py CREDENTIAL_ID")
    status, headers, answer = proxy("GET", sys.argv[1], "v1/calendars", client_key())
    if headers.get("X-Tokend-Error") == "1":
        # tokend's own answer: no such credential, the grant needs a person
        # to sign in again (409), the provider is down (503), ...
        sys.exit("tokend: %d %s: %s" % (status, answer.get("error"), answer.get("message")))
    if status != 200:
        sys.exit("Cronofy API: HTTP %d: %s" % (status, answer))
    for calendar in answer["calendars"]:
        print("calendar: %s (%s)" % (calendar["calendar_name"], calendar["calendar_id"]))


if __name__ == "__main__":
    main()
