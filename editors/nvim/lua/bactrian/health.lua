-- :checkhealth bactrian — is the sidecar reachable, and does it speak our protocol?
local M = {}

local h = vim.health or require('health')
local start = h.start or h.report_start
local ok = h.ok or h.report_ok
local warn = h.warn or h.report_warn
local err = h.error or h.report_error

function M.check()
  start('bactrian')
  local v = vim.version()
  if v.major == 0 and v.minor < 7 then
    err('Neovim 0.7 or later is needed (this is ' .. v.major .. '.' .. v.minor .. ')')
  else
    ok(string.format('Neovim %d.%d.%d', v.major, v.minor, v.patch))
  end
  local b = require('bactrian')
  local socket = b.config.socket or b.rpc.default_socket()
  if not vim.loop.fs_stat(socket) then
    warn('no sidecar socket at ' .. socket, { 'start it with `bactrian aid serve`' })
    return
  end
  if not b.connect() then
    err('the sidecar at ' .. socket .. ' does not answer', { 'restart it: `bactrian aid restart`' })
    return
  end
  local s = b.rpc.server
  ok(string.format('connected to bactrian aid %s (protocol %s) at %s', s.serverVersion,
    s.protocolVersion, socket))
  local arm = b.rpc.val(s.arm) or {}
  ok(string.format('model %s, strategy %s, arm %s', arm.model or '?', arm.strategy or '?',
    arm.arm or '?'))
end

return M
