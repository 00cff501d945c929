#!/usr/bin/env node
// List a user's Cronofy calendars through tokend's API proxy.
//
// The program never holds an access token: tokend attaches it, and on a 401
// from Cronofy refreshes it and resends the request itself. Node.js 18 or
// newer, no packages. Usage:
//
//     TOKEND_KEY_FILE=client.key node calendars.mjs user-42
//
// Environment (all optional):
//     TOKEND_URL       tokend's address            (default http://127.0.0.1:7780)
//     TOKEND_KEY       the client key itself, or
//     TOKEND_KEY_FILE  a file holding it           (default ./client.key)

import { readFileSync } from "node:fs";
import http from "node:http";

const TOKEND_URL = (process.env.TOKEND_URL ?? "http://127.0.0.1:7780").replace(/\/$/, "");

function fail(message) {
  console.error(message);
  process.exit(1);
}

function clientKey() {
  if (process.env.TOKEND_KEY) return process.env.TOKEND_KEY.trim();
  return readFileSync(process.env.TOKEND_KEY_FILE ?? "client.key", "utf8").trim();
}

// [status, headers, parsed JSON body] of one call through the proxy.
// node:http rather than the built-in fetch: fetch sends `Sec-Fetch-Mode: cors`
// as a browser does, and tokend refuses every request that looks like it came
// from a browser.
function proxy(method, credential, path, key) {
  const url = `${TOKEND_URL}/v1/proxy/${encodeURIComponent(credential)}/${path}`;
  const headers = { Authorization: `Bearer ${key}` };
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, headers, timeout: 30_000 }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => (text += chunk));
      response.on("end", () => {
        let body;
        try {
          body = JSON.parse(text);
        } catch {
          body = { error: `http_${response.statusCode}`, message: text };
        }
        resolve([response.statusCode, response.headers, body]);
      });
    });
    request.on("timeout", () => request.destroy(new Error(`${url}: timed out`)));
    request.on("error", reject);
    request.end();
  });
}

async function main() {
  if (process.argv.length !== 3) fail("usage: calendars.mjs CREDENTIAL_ID");
  const [status, headers, answer] = await proxy("GET", process.argv[2], "v1/calendars", clientKey());
  if (headers["x-tokend-error"] === "1") {
    // tokend's own answer: no such credential, the grant needs a person to
    // sign in again (409), the provider is down (503), ...
    fail(`tokend: ${status} ${answer.error}: ${answer.message}`);
  }
  if (status !== 200) fail(`Cronofy API: HTTP ${status}: ${JSON.stringify(answer)}`);
  for (const calendar of answer.calendars) {
    console.log(`calendar: ${calendar.calendar_name} (${calendar.calendar_id})`);
  }
}

main().catch((e) => fail(`error: ${e.message}`));
