-- wrk script: GET a random seeded Patient per request, with the bearer token.
-- Env: PHIGATE_IDS (file of ids), PHIGATE_TOKEN.
local ids = {}
local token = os.getenv("PHIGATE_TOKEN")

function init(args)
  for line in io.lines(os.getenv("PHIGATE_IDS")) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function request()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/fhir/Patient/" .. id, { ["Authorization"] = "Bearer " .. token })
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
