-- Prepended to the coordinator's scripts and the broker's (which read revocations, kept as
-- the coordinator's expiring values). Touches no keys.
--
-- The value of a stored "<expires_at>|<value>" string while it is live at `now` (unix
-- seconds), else nil.
local function live_value(stored, now)
  if not stored then
    return nil
  end
  local bar = string.find(stored, '|', 1, true)
  if not bar or tonumber(string.sub(stored, 1, bar - 1)) <= now then
    return nil
  end
  return string.sub(stored, bar + 1)
end
