#!/usr/bin/env ruby
# frozen_string_literal: true

# List a user's Cronofy calendars through tokend's API proxy.
#
# The program never holds an access token: tokend attaches it, and on a 401
# from Cronofy refreshes it and resends the request itself. Standard library
# only (net/http, json). Usage:
#
#     TOKEND_KEY_FILE=client.key ruby calendars.rb user-42
#
# Environment (all optional):
#     TOKEND_URL       tokend's address            (default http://127.0.0.1:7780)
#     TOKEND_KEY       the client key itself, or
#     TOKEND_KEY_FILE  a file holding it           (default ./client.key)

require "json"
require "net/http"
require "uri"

TOKEND_URL = ENV.fetch("TOKEND_URL", "http://127.0.0.1:7780").chomp("/")

def client_key
  return ENV["TOKEND_KEY"].strip if ENV["TOKEND_KEY"] && !ENV["TOKEND_KEY"].empty?

  File.read(ENV.fetch("TOKEND_KEY_FILE", "client.key")).strip
end

# [status, response, parsed JSON body] of one GET through the proxy.
def proxy_get(credential, path, key)
  uri = URI("#{TOKEND_URL}/v1/proxy/#{URI.encode_www_form_component(credential)}/#{path}")
  request = Net::HTTP::Get.new(uri)
  request["Authorization"] = "Bearer #{key}"
  response = Net::HTTP.start(uri.host, uri.port, open_timeout: 30, read_timeout: 30) do |http|
    http.request(request)
  end
  body = begin
    JSON.parse(response.body)
  rescue JSON::ParserError
    { "error" => "http_#{response.code}", "message" => response.body }
  end
  [response.code.to_i, response, body]
end

abort("usage: calendars.rb CREDENTIAL_ID") unless ARGV.length == 1
status, response, answer = proxy_get(ARGV[0], "v1/calendars", client_key)
if response["X-Tokend-Error"] == "1"
  # tokend's own answer: no such credential, the grant needs a person to sign
  # in again (409), the provider is down (503), ...
  abort("tokend: #{status} #{answer['error']}: #{answer['message']}")
end
abort("Cronofy API: HTTP #{status}: #{answer}") unless status == 200
answer["calendars"].each do |calendar|
  puts "calendar: #{calendar['calendar_name']} (#{calendar['calendar_id']})"
end
