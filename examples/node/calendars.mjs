#!/usr/bin/env node
// List a user's Cronofy calendars with an access token from tokend.
//
// Node.js 18 or newer, no packages. Usage:
//
//     TOKEND_KEY_FILE=client.key node calendars.mjs user-42
//
// Environment (all optional):
//     TOKEND_URL       tokend's address            (default http://127.0.0.1:7780)
//     TOKEND_KEY       the client key itself, or
//     TOKEND_KEY_FILE  a file holding it           (default ./client.key)
//     CRONOFY_API      Cronofy's API host          (default https://api.cronofy.com)

import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";

const TOKEND_URL = (process.env.TOKEND_URL ?? "http://127.0.0.1:7780").replace(/\/$/, "");
const CRONOFY_API = (process.env.CRONOFY_API ?? "https://api.cronofy.com").replace(/\/$/, "");
// The token must stay valid for at least this long: the calls below fit in it.
const MIN_TTL = 60;

function fail(message) {
  console.error(message);
  process.exit(1);
}

function clientKey() {
  if (process.env.TOKEND_KEY) return process.env.TOKEND_KEY.trim();
  return readFileSync(process.env.TOKEND_KEY_FILE ?? "client.key", "utf8").trim();
}

// [status, parsed JSON body] of one HTTP call. node:http rather than the
// built-in fetch: fetch sends `Sec-Fetch-Mode: cors` as a browser does, and
// tokend refuses every request that looks like it came from a browser.
function call(method, url, bearer, body) {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers = { Authorization: `Bearer ${bearer}` };
  if (payload !== undefined) {
    headers["Content-Type"] = "application/json";
    headers["Content-Length"] = Buffer.byteLength(payload);
  }
  const client = url.startsWith("https:") ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.request(url, { method, headers, timeout: 30_000 }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => (text += chunk));
      response.on("end", () => {
        try {
          resolve([response.statusCode, JSON.parse(text)]);
        } catch {
          resolve([response.statusCode, { error: `http_${response.statusCode}`, message: text }]);
        }
      });
    });
    request.on("timeout", () => request.destroy(new Error(`${url}: timed out`)));
    request.on("error", reject);
    request.end(payload);
  });
}

// A tokend call; any error is fatal and says what tokend said.
async function tokend(method, path, key, body) {
  const [status, answer] = await call(method, TOKEND_URL + path, key, body);
  if (status !== 200) fail(`tokend ${method} ${path}: ${status} ${answer.error}: ${answer.message}`);
  return answer;
}

async function main() {
  if (process.argv.length !== 3) fail("usage: calendars.mjs CREDENTIAL_ID");
  const credential = encodeURIComponent(process.argv[2]);
  const key = clientKey();

  let token = await tokend("GET", `/v1/tokens/${credential}?min_ttl=${MIN_TTL}`, key);
  let [status, answer] = await call("GET", `${CRONOFY_API}/v1/calendars`, token.access_token);
  if (status === 401) {
    // The provider refused this token (revoked, or expired early): ask tokend
    // for a new one, naming the refused token so that several callers hitting
    // the same 401 cause one refresh, not many.
    console.error("401 from the API: asking tokend for a new token");
    token = await tokend("POST", `/v1/tokens/${credential}/refresh`, key, {
      rejected_token: token.access_token,
    });
    [status, answer] = await call("GET", `${CRONOFY_API}/v1/calendars`, token.access_token);
  }
  if (status !== 200) fail(`Cronofy API: HTTP ${status}: ${JSON.stringify(answer)}`);
  for (const calendar of answer.calendars) {
    console.log(`calendar: ${calendar.calendar_name} (${calendar.calendar_id})`);
  }
}

main().catch((e) => fail(`error: ${e.message}`));
