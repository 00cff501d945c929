#!/usr/bin/env ruby
# frozen_string_literal: true

# List a user's Cronofy calendars with an access token from tokend.
#
# Standard library only (net/http, json). Usage:
#
#     TOKEND_KEY_FILE=client.key ruby calendars.rb user-42
#
# Environment (all optional):
#     TOKEND_URL       tokend's address            (default http://127.0.0.1:7780)
#     TOKEND_KEY       the client key itself, or
#     TOKEND_KEY_FILE  a file holding it           (default ./client.key)
#     CRONOFY_API      Cronofy's API host          (default https://api.cronofy.com)

require "json"
require "net/http"
require "uri"

TOKEND_URL = ENV.fetch("TOKEND_URL", "http://127.0.0.1:7780").chomp("/")
CRONOFY_API = ENV.fetch("CRONOFY_API", "https://api.cronofy.com").chomp("/")
# The token must stay valid for at least this long: the calls below fit in it.
MIN_TTL = 60

def client_key
  return ENV["TOKEND_KEY"].strip if ENV["TOKEND_KEY"] && !ENV["TOKEND_KEY"].empty?

  File.read(ENV.fetch("TOKEND_KEY_FILE", "client.key")).strip
end

# [status, parsed JSON body] of one HTTP call.
def call(method, url, bearer, body = nil)
  uri = URI(url)
  request = (method == "POST" ? Net::HTTP::Post : Net::HTTP::Get).new(uri)
  request["Authorization"] = "Bearer #{bearer}"
  unless body.nil?
    request["Content-Type"] = "application/json"
    request.body = JSON.generate(body)
  end
  response = Net::HTTP.start(uri.host, uri.port, use_ssl: uri.scheme == "https",
                                                 open_timeout: 30, read_timeout: 30) do |http|
    http.request(request)
  end
  begin
    [response.code.to_i, JSON.parse(response.body)]
  rescue JSON::ParserError
    [response.code.to_i, { "error" => "http_#{response.code}", "message" => response.body }]
  end
end

# A tokend call; any error is fatal and says what tokend said.
def tokend(method, path, key, body = nil)
  status, answer = call(method, TOKEND_URL + path, key, body)
  abort("tokend #{method} #{path}: #{status} #{answer['error']}: #{answer['message']}") unless status == 200
  answer
end

abort("usage: calendars.rb CREDENTIAL_ID") unless ARGV.length == 1
credential = URI.encode_www_form_component(ARGV[0])
key = client_key

token = tokend("GET", "/v1/tokens/#{credential}?min_ttl=#{MIN_TTL}", key)
status, answer = call("GET", "#{CRONOFY_API}/v1/calendars", token["access_token"])
if status == 401
  # The provider refused this token (revoked, or expired early): ask tokend
  # for a new one, naming the refused token so that several callers hitting
  # the same 401 cause one refresh, not many.
  warn "401 from the API: asking tokend for a new token"
  token = tokend("POST", "/v1/tokens/#{credential}/refresh", key,
                 { "rejected_token" => token["access_token"] })
  status, answer = call("GET", "#{CRONOFY_API}/v1/calendars", token["access_token"])
end
abort("Cronofy API: HTTP #{status}: #{answer}") unless status == 200
answer["calendars"].each do |calendar|
  puts "calendar: #{calendar['calendar_name']} (#{calendar['calendar_id']})"
end
