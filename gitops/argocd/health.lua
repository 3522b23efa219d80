-- Argo CD health for orderflow.dev Orders and Fulfillments (one script serves both kinds).
-- It reads the kstatus conditions the controllers write (docs/status.md): Ready = the spec is
-- done, Stalled = it cannot get there without a change. A spec change the controller has not
-- acted on yet (observedGeneration behind) is Progressing whatever the conditions say. A pause
-- the spec asked for, and a Fulfillment not yet started, are known waiting states: Suspended.
local hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to report"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to act on the latest change"
  return hs
end
local conditions = {}
for _, condition in ipairs(obj.status.conditions) do
  conditions[condition.type] = condition
end
local stalled, ready = conditions["Stalled"], conditions["Ready"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end
if ready ~= nil and ready.status == "True" then
  if ready.reason == "Paused" or ready.reason == "NotStarted" then
    hs.status = "Suspended"
  else
    hs.status = "Healthy"
  end
  hs.message = ready.message
  return hs
end
hs.status = "Progressing"
if ready ~= nil then
  hs.message = ready.message
else
  hs.message = "In progress"
end
return hs
