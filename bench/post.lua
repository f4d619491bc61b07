-- wrk script for bench/serve_bench.py: POST one short text per request, cycling through a few topics.
local texts = {
  "The striker scored a late goal as the team won the league match.",
  "Forecast says heavy rain and strong wind, then frost and snow tomorrow.",
  "Shares fell as the bank raised interest rates and investors sold bonds.",
  "The startup released new software for the laptop chip and a cloud server.",
  "Rain today.",
  "After the report, many people say the new app drains the battery of this small laptop before noon.",
}
local bodies = {}
for i, text in ipairs(texts) do
  bodies[i] = '{"inputs": "' .. text .. '"}'
end
local counter = 0

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])
end
