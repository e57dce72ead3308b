-- The AID protocol's transport (docs/aid-protocol.md): JSON-RPC 2.0 with Content-Length
-- framing over the sidecar's Unix socket, and the protocol's reconnect rules. Works on
-- Neovim 0.7 (vim.loop, no vim.uv, no vim.lsp.rpc.connect): every libuv callback hands its
-- work to vim.schedule before touching the editor.
local M = {}

local uv = vim.loop
local PROTOCOL = '1.0'

M.state = 'disconnected' -- 'connecting', 'connected'
M.server = nil -- the last initialize result
M.on_notification = function(_, _) end
M.on_state = function(_) end
M.give_up_s = 30

local pipe = nil
local inbuf = ''
local next_id = 0
local pending = {} -- id -> {cb = callback(err, result), method = ..., params = ...}
local resend = {} -- requests cut by a lost connection, sent again after the reconnect
local init_params = nil
local socket_path = nil
local reconnecting = false
local closing = false

--- JSON null as nil.
function M.val(x)
  if x == vim.NIL then
    return nil
  end
  return x
end

local function set_state(s)
  M.state = s
  M.on_state(s)
end

function M.default_socket()
  local xdg = os.getenv('XDG_RUNTIME_DIR')
  if xdg and xdg ~= '' then
    return xdg .. '/bactrian/aid.sock'
  end
  return string.format('/tmp/bactrian-%d/aid.sock', uv.getuid())
end

local function send(msg)
  local body = vim.json.encode(msg)
  pipe:write(string.format('Content-Length: %d\r\n\r\n%s', #body, body))
end

local function dispatch(msg)
  if msg.method ~= nil and msg.id == nil then
    M.on_notification(msg.method, msg.params or {})
    return
  end
  local req = pending[msg.id]
  if req == nil then
    return
  end
  pending[msg.id] = nil
  local err = M.val(msg.error)
  if err and err.code == -32001 then
    if req.method ~= 'propose' and req.method ~= 'initialize' then
      table.insert(resend, req)
      M.restart_signal(M.val(err.data) and M.val(err.data.retryAfterMs))
      return
    end
    M.restart_signal(M.val(err.data) and M.val(err.data.retryAfterMs))
  end
  req.cb(err, M.val(msg.result))
end

local function on_data(data)
  inbuf = inbuf .. data
  while true do
    local head_end = inbuf:find('\r\n\r\n', 1, true)
    if not head_end then
      return
    end
    local len = tonumber(inbuf:sub(1, head_end):match('[Cc]ontent%-[Ll]ength: *(%d+)'))
    if not len then -- unframeable: drop the connection, the reconnect starts afresh
      pipe:close()
      return
    end
    local body_start = head_end + 4
    if #inbuf < body_start + len - 1 then
      return
    end
    local body = inbuf:sub(body_start, body_start + len - 1)
    inbuf = inbuf:sub(body_start + len)
    local ok, msg = pcall(vim.json.decode, body)
    if ok and type(msg) == 'table' then
      dispatch(msg)
    end
  end
end

--- The connection went: a running propose fails (retryable), other requests wait for the
--- reconnect and are sent again (protocol rule 3).
local function fail_pending(message)
  local old = pending
  pending = {}
  for _, req in pairs(old) do
    if req.method == 'propose' or req.method == 'initialize' then
      req.cb({ code = -32001, message = message, data = { retryable = true } }, nil)
    else
      table.insert(resend, req)
    end
  end
end

local function on_closed()
  if pipe and not pipe:is_closing() then
    pipe:close()
  end
  pipe = nil
  inbuf = ''
  set_state('disconnected')
  fail_pending('the sidecar restarted while answering; ask again')
  M.on_notification('bactrian/disconnected', {})
  if not closing then
    M.reconnect(nil)
  end
end

--- Open a connection to path; cb(err) in the main loop.
local function open(path, cb)
  local p = uv.new_pipe(false)
  p:connect(path, function(err)
    vim.schedule(function()
      if err then
        p:close()
        cb(err)
        return
      end
      pipe = p
      inbuf = ''
      p:read_start(function(rerr, data)
        vim.schedule(function()
          if p ~= pipe then
            return
          end
          if data then
            on_data(data)
          else
            on_closed(rerr)
          end
        end)
      end)
      cb(nil)
    end)
  end)
end

--- Send a request; cb(err, result) runs in the main loop.
function M.request(method, params, cb)
  if not pipe then
    cb({ code = -1, message = 'not connected to bactrian aid' }, nil)
    return
  end
  next_id = next_id + 1
  params = params or vim.empty_dict()
  pending[next_id] = { cb = cb, method = method, params = params }
  send({ jsonrpc = '2.0', id = next_id, method = method, params = params })
  return next_id
end

local function initialize(cb)
  set_state('connecting')
  M.request('initialize', init_params, function(err, result)
    if err then
      cb(err)
      return
    end
    M.server = result
    set_state('connected')
    cb(nil, result)
  end)
end

--- Connect to path and initialize for root; cb(err, result).
function M.connect(path, root, client_version, cb)
  socket_path = path
  init_params = {
    protocolVersion = PROTOCOL,
    client = { name = 'bactrian.nvim', version = client_version },
    workspaceRoot = root,
  }
  closing = false
  open(path, function(err)
    if err then
      cb({ code = -1, message = err }, nil)
      return
    end
    initialize(cb)
  end)
end

--- The protocol's reconnect loop: first try after retry_after_ms (or 50 ms), doubling,
--- capped at 1 s, +-20 % jitter, give up after 30 s. One loop at a time.
function M.reconnect(retry_after_ms)
  if reconnecting or socket_path == nil then
    return
  end
  reconnecting = true
  set_state('connecting')
  local started = uv.now()
  local delay = 50
  local function attempt()
    open(socket_path, function(err)
      if not err then
        initialize(function(ierr, result)
          reconnecting = false
          if not ierr then
            M.on_notification('bactrian/reconnected', result)
            local todo = resend
            resend = {}
            for _, req in ipairs(todo) do
              M.request(req.method, req.params, req.cb)
            end
          end
        end)
        return
      end
      if uv.now() - started > M.give_up_s * 1000 then
        reconnecting = false
        set_state('disconnected')
        local todo = resend
        resend = {}
        for _, req in ipairs(todo) do
          req.cb({ code = -1, message = 'bactrian aid is not running' }, nil)
        end
        M.on_notification('bactrian/gave-up', {})
        return
      end
      local wait = math.floor(delay * (0.8 + 0.4 * math.random()))
      delay = math.min(1000, delay * 2)
      vim.defer_fn(attempt, wait)
    end)
  end
  vim.defer_fn(attempt, retry_after_ms or 50)
end

--- The server announced a restart (-32001 or aid/restarting): drop and reconnect.
function M.restart_signal(retry_after_ms)
  if pipe then
    local p = pipe
    pipe = nil
    p:close()
    set_state('disconnected')
    fail_pending('the sidecar restarted while answering; ask again')
    M.on_notification('bactrian/disconnected', {})
  end
  M.reconnect(retry_after_ms)
end

--- A connection without initialize (the transcript replay sends its own); cb(err).
function M.open(path, cb)
  closing = false
  open(path, function(err)
    if not err then
      set_state('connected')
    end
    cb(err)
  end)
end

function M.close()
  closing = true
  if pipe then
    pipe:close()
    pipe = nil
  end
  set_state('disconnected')
end

function M.connected()
  return pipe ~= nil and M.state == 'connected'
end

return M
