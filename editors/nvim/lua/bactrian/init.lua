-- bactrian.nvim: a thin client of the bactrian AID sidecar. Ask for a change, watch the answer
-- stream into a scratch buffer, preview the multi-file diff, apply it to buffers, accept or
-- reject. Prompt, context and model logic all live in the sidecar (docs/aid-protocol.md).
local rpc = require('bactrian.rpc')
local M = {}

M.version = '0.1.0'
M.config = {
  socket = nil, -- nil: the protocol's default path
  server_cmd = { 'bactrian', 'aid', 'serve' },
  start_server = 'ask', -- 'ask', true or false
  root = nil, -- nil: the VCS or dune-project root of the current file, else the cwd
}

local val = rpc.val
local proposal = nil -- {id, state, final, applied, before, feedback, source}
local last_ask = nil
local root = nil

local function notify(msg, level)
  vim.notify('bactrian: ' .. msg, level or vim.log.levels.INFO)
end

-- Conversation buffer -----------------------------------------------------------------

local function scratch(name, ft)
  local b = vim.fn.bufnr(name)
  if b ~= -1 and vim.api.nvim_buf_is_loaded(b) then
    return b
  end
  b = vim.api.nvim_create_buf(true, true)
  vim.api.nvim_buf_set_name(b, name)
  vim.api.nvim_buf_set_option(b, 'filetype', ft)
  vim.api.nvim_buf_set_option(b, 'swapfile', false)
  return b
end

local function conversation()
  local b = vim.fn.bufnr('bactrian://conversation')
  if b ~= -1 and vim.api.nvim_buf_is_loaded(b) then
    return b
  end
  b = scratch('bactrian://conversation', 'markdown')
  vim.api.nvim_buf_set_lines(b, 0, -1, false, { '# bactrian', '' })
  vim.api.nvim_buf_set_keymap(b, 'n', '<C-c><C-c>', '<Cmd>BactrianSend<CR>', {})
  return b
end

--- Append text to the conversation (it may continue the last line); follow its end.
local function append(text)
  local b = conversation()
  local last = vim.api.nvim_buf_line_count(b)
  local tail = vim.api.nvim_buf_get_lines(b, last - 1, last, false)[1] or ''
  local lines = vim.split(tail .. text, '\n', { plain = true })
  vim.api.nvim_buf_set_lines(b, last - 1, last, false, lines)
  for _, w in ipairs(vim.fn.win_findbuf(b)) do
    vim.api.nvim_win_set_cursor(w, { vim.api.nvim_buf_line_count(b), 0 })
  end
end

function M.show()
  local b = conversation()
  if #vim.fn.win_findbuf(b) == 0 then
    vim.cmd(vim.o.columns >= 140 and 'botright vsplit' or 'botright split')
    vim.api.nvim_win_set_buf(0, b)
    vim.cmd('wincmd p')
  end
end

-- Connection --------------------------------------------------------------------------

local function find_root()
  if M.config.root then
    return M.config.root
  end
  local here = vim.fn.expand('%:p:h')
  for _, marker in ipairs({ '.git', '.hg', 'dune-project' }) do
    local found = vim.fn.finddir(marker, here .. ';')
    if found == '' then
      found = vim.fn.findfile(marker, here .. ';')
    end
    if found ~= '' then
      return vim.fn.fnamemodify(found, ':p:h:h'):gsub('/$', '')
    end
  end
  return vim.fn.getcwd()
end

local function on_state(_)
  vim.cmd('redrawstatus!')
end

function M.statusline()
  return ({ connected = 'AID', connecting = 'AID[…]' })[rpc.state] or 'AID[off]'
end

local function fail_in_flight()
  if proposal and proposal.state == 'asking' then
    proposal.state = 'failed'
    append('\n\n**interrupted:** the sidecar restarted while answering; the answer is lost. '
      .. 'Ask again with :BactrianRetry\n')
  end
end

local progress -- forward

local function on_notification(method, params)
  if method == 'aid/progress' then
    if proposal and params.proposalId == proposal.id then
      progress(params)
    elseif proposal and proposal.id == nil and proposal.state == 'asking' then
      -- the sidecar may stream before it answers propose: keep until the id is known
      table.insert(proposal.early, params)
    end
  elseif method == 'aid/restarting' then
    fail_in_flight()
    rpc.restart_signal(val(params.retryAfterMs))
  elseif method == 'bactrian/disconnected' then
    fail_in_flight()
  elseif method == 'bactrian/reconnected' then
    notify('reconnected to bactrian aid (the sidecar restarted)')
  elseif method == 'bactrian/gave-up' then
    fail_in_flight()
    notify('bactrian aid is not running: start it with `bactrian aid serve`', vim.log.levels.ERROR)
  end
end

--- Connect (starting the sidecar if allowed); true once initialized.
function M.connect()
  if rpc.connected() then
    return true
  end
  if rpc.state == 'connecting' then
    vim.wait(5000, function()
      return rpc.state ~= 'connecting'
    end, 20)
    return rpc.connected()
  end
  rpc.on_notification = function(m, p)
    local ok, err = pcall(on_notification, m, p)
    if not ok then
      notify(tostring(err), vim.log.levels.ERROR)
    end
  end
  rpc.on_state = on_state
  local socket = M.config.socket or rpc.default_socket()
  root = find_root()
  local result, failure = nil, nil
  local function try()
    result, failure = nil, nil
    rpc.connect(socket, root, M.version, function(err, res)
      result, failure = res, err or false
    end)
    vim.wait(5000, function()
      return failure ~= nil
    end, 10)
  end
  try()
  if failure and M.config.start_server then
    local yes = M.config.start_server == true
      or vim.fn.confirm('No bactrian aid sidecar answers; start one?', '&Yes\n&No') == 1
    if yes then
      local cmd = vim.list_extend(vim.deepcopy(M.config.server_cmd), { '--socket', socket })
      vim.fn.jobstart(cmd, { detach = true })
      vim.wait(10000, function()
        return vim.loop.fs_stat(socket) ~= nil
      end, 100)
      try()
    end
  end
  if failure then
    notify('bactrian aid is not running: start it with `bactrian aid serve` (socket ' .. socket .. ')',
      vim.log.levels.ERROR)
    return false
  end
  notify(string.format('connected to bactrian aid %s (arm %s)', result.serverVersion,
    val(result.arm) and result.arm.arm or '?'))
  return true
end

-- Asking --------------------------------------------------------------------------------

local function rel(path)
  local prefix = root .. '/'
  if path:sub(1, #prefix) == prefix then
    return path:sub(#prefix + 1)
  end
  return path
end

local function buf_text(b)
  local text = table.concat(vim.api.nvim_buf_get_lines(b, 0, -1, false), '\n')
  if vim.api.nvim_buf_get_option(b, 'eol') and text ~= '' then
    text = text .. '\n'
  end
  return text
end

local function file_buffer(path)
  local b = vim.fn.bufnr(root .. '/' .. path)
  if b ~= -1 and vim.api.nvim_buf_is_loaded(b) then
    return b
  end
  return nil
end

local function open_buffers(except)
  local out = {}
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    local name = vim.api.nvim_buf_get_name(b)
    if b ~= except and vim.api.nvim_buf_is_loaded(b) and name:sub(1, #root + 1) == root .. '/'
      and vim.api.nvim_buf_get_option(b, 'buftype') == '' then
      table.insert(out, { path = rel(name), text = buf_text(b) })
    end
  end
  return out
end

local function feedback(outcome, final_text, quiet)
  if not (proposal and proposal.id) or proposal.feedback then
    return
  end
  proposal.feedback = outcome
  local params = { proposalId = proposal.id, outcome = outcome, finalText = final_text }
  rpc.request('feedback', params, function(err, _)
    if err then
      notify('feedback failed: ' .. err.message, vim.log.levels.WARN)
    elseif not quiet then
      append('_feedback: ' .. outcome .. '_\n')
    end
  end)
end

local function propose(params, source)
  -- a finished proposal left without a verdict is rejected: feedback in every case
  if proposal and proposal.state == 'final' and not proposal.feedback then
    feedback('rejected', nil, true)
  end
  last_ask = { params = params, source = source }
  proposal = { state = 'asking', source = source, early = {} }
  local mine = proposal
  append('\n## ' .. params.prompt .. '\n\n')
  rpc.request('propose', params, function(err, result)
    if err and err.code == -32001 then
      fail_in_flight() -- the connection went before the proposal id came
      return
    elseif err then
      mine.state = 'failed'
      append('\n**failed:** ' .. err.message .. '\n')
      return
    end
    mine.id = result.proposalId
    for _, p in ipairs(mine.early) do
      if p.proposalId == mine.id and proposal == mine then
        progress(p)
      end
    end
    mine.early = {}
  end)
end

--- Ask prompt about scope: 'region' (lines {first, last}, 1-based, default the visual
--- marks), 'buffer' or 'workspace'.
function M.ask(prompt, scope, lines)
  if not prompt or prompt == '' then
    notify('type a prompt: :BactrianAsk add a to_string for t', vim.log.levels.WARN)
    return
  end
  if not M.connect() then
    return
  end
  local b = vim.api.nvim_get_current_buf()
  local params = { prompt = prompt }
  local name = vim.api.nvim_buf_get_name(b)
  if scope ~= 'workspace' and name ~= '' and vim.api.nvim_buf_get_option(b, 'buftype') == '' then
    params.file = { path = rel(name), text = buf_text(b) }
  end
  if scope == 'region' then
    local first = lines and lines[1] or vim.fn.line("'<")
    local last = lines and lines[2] or vim.fn.line("'>")
    params.selection = {
      start = { line = first - 1, character = 0 },
      ['end'] = { line = last - 1, character = #vim.fn.getline(last) },
    }
  else
    local c = vim.api.nvim_win_get_cursor(0)
    params.cursor = { line = c[1] - 1, character = c[2] }
  end
  params.buffers = open_buffers(b)
  M.show()
  propose(params, b)
end

function M.retry()
  if not last_ask then
    notify('nothing to retry', vim.log.levels.WARN)
    return
  end
  if M.connect() then
    propose(last_ask.params, last_ask.source)
  end
end

--- Send the prompt typed below the last marker of the conversation buffer.
function M.send()
  local b = conversation()
  local lines = vim.api.nvim_buf_get_lines(b, 0, -1, false)
  local start = 1
  for i = #lines, 1, -1 do
    if lines[i]:match('^_.*_$') or lines[i]:match('^```$') or lines[i]:match('^# bactrian$') then
      start = i + 1
      break
    end
  end
  local prompt = vim.trim(table.concat(vim.list_slice(lines, start, #lines), '\n'))
  vim.api.nvim_buf_set_lines(b, start - 1, -1, false, { '' })
  local source = last_ask and last_ask.source
  if source and vim.api.nvim_buf_is_valid(source) then
    vim.api.nvim_buf_call(source, function()
      M.ask(prompt, 'buffer')
    end)
  else
    M.ask(prompt, 'workspace')
  end
end

function M.cancel()
  if not (proposal and proposal.id and proposal.state == 'asking') then
    notify('no request is running', vim.log.levels.WARN)
    return
  end
  rpc.request('cancel', { proposalId = proposal.id }, function() end)
end

progress = function(p)
  local kind = p.kind
  if kind == 'context' then
    local files = {}
    for _, f in ipairs(p.files or {}) do
      table.insert(files, string.format('%s (%s)', f.path, f.reason))
    end
    append(string.format('_context: %s; model %s_\n\n', table.concat(files, ', '), p.model))
  elseif kind == 'token' then
    append(p.text)
  elseif kind == 'final' then
    proposal.state = 'final'
    proposal.final = p
    local diff = val(p.diff) or ''
    if diff == '' then
      append('\n\n_no change proposed' .. (val(p.error) and (': ' .. p.error) or '') .. '_\n')
    else
      if diff:sub(-1) ~= '\n' then
        diff = diff .. '\n'
      end
      local how = p.lenient == true and 'applies leniently' or 'applies'
      append('\n\n_the change, checked by the sidecar (' .. how .. '):_\n```diff\n' .. diff
        .. '```\n_:BactrianPreview · :BactrianApply · :BactrianReject_\n')
    end
  elseif kind == 'error' then
    if p.code == -32001 then
      fail_in_flight()
      rpc.restart_signal(nil)
    else
      proposal.state = 'failed'
      append('\n\n**error:** ' .. p.message .. '\n')
    end
  elseif kind == 'cancelled' then
    proposal.state = 'cancelled'
    append('\n\n_cancelled_\n')
  end
end

-- Preview, apply, feedback --------------------------------------------------------------

local function final()
  if not (proposal and proposal.final) then
    notify('no finished proposal (ask first, or wait for the answer)', vim.log.levels.WARN)
    return nil
  end
  return proposal.final
end

function M.preview()
  local f = final()
  if not f then
    return
  end
  local b = scratch('bactrian://diff', 'diff')
  local lines = {}
  for _, file in ipairs(f.files or {}) do
    vim.list_extend(lines, vim.split(file.diff, '\n', { plain = true }))
  end
  vim.api.nvim_buf_set_lines(b, 0, -1, false, lines)
  vim.cmd('botright split')
  vim.api.nvim_win_set_buf(0, b)
end

local function set_text(b, text)
  local lines = vim.split(text, '\n', { plain = true })
  if lines[#lines] == '' then
    table.remove(lines)
  end
  vim.api.nvim_buf_set_lines(b, 0, -1, false, lines)
end

--- Nothing changed: never reported as applied, fed back as rejected.
local function nothing_applied()
  append('\n_nothing applied: the proposal leaves every file as it is_\n')
  feedback('rejected', nil)
end

local function apply_result(result)
  local changed, before = {}, {}
  for _, f in ipairs(result.files or {}) do
    local path = f.path
    local open = file_buffer(path)
    local b = open
    if not b then
      b = vim.fn.bufadd(root .. '/' .. path)
      vim.fn.bufload(b)
    end
    local old = buf_text(b)
    table.insert(before, { path = path, text = old, closed = open == nil })
    if f.status == 'deleted' then
      os.remove(root .. '/' .. path)
      vim.api.nvim_buf_delete(b, { force = true })
      table.insert(changed, path)
    elseif old ~= (val(f.newText) or '') then
      set_text(b, f.newText)
      table.insert(changed, path)
      if not open then
        vim.api.nvim_buf_call(b, function()
          vim.cmd('silent write')
        end)
      end
    end
  end
  proposal.before = before
  if #changed == 0 then
    nothing_applied()
    return
  end
  proposal.applied = changed
  local rungs = {}
  for _, f in ipairs(result.files or {}) do
    for _, h in ipairs(f.hunks or {}) do
      table.insert(rungs, h.rung)
    end
  end
  append(string.format('\n_applied to %s (%s); :BactrianAccept · :BactrianReject_\n',
    table.concat(changed, ', '), table.concat(rungs, '/')))
end

function M.apply()
  local f = final()
  if not f then
    return
  end
  if #(f.files or {}) == 0 then
    nothing_applied()
    return
  end
  local bufs = {}
  for _, file in ipairs(f.files or {}) do
    local b = file_buffer(file.path)
    if b then
      table.insert(bufs, { path = file.path, text = buf_text(b) })
    end
  end
  rpc.request('apply', { proposalId = proposal.id, target = 'buffers', buffers = bufs },
    function(err, result)
      if err then
        append('\n**apply failed:** ' .. err.message .. '\n')
      else
        apply_result(result)
      end
    end)
end

function M.accept()
  local f = final()
  if not f then
    return
  end
  if not proposal.applied then
    notify('apply the proposal first (:BactrianApply)', vim.log.levels.WARN)
    return
  end
  local edited, any = {}, false
  for _, file in ipairs(f.files or {}) do
    local b = file_buffer(file.path)
    if b and buf_text(b) ~= val(file.newText) then
      edited[file.path] = buf_text(b)
      any = true
    end
  end
  if any then
    feedback('edited', edited)
  else
    feedback('accepted', nil)
  end
end

function M.reject()
  if not final() then
    return
  end
  for _, entry in ipairs(proposal.before or {}) do
    local b = file_buffer(entry.path)
    if not b then
      b = vim.fn.bufadd(root .. '/' .. entry.path)
      vim.fn.bufload(b)
    end
    set_text(b, entry.text)
    if entry.closed then
      vim.api.nvim_buf_call(b, function()
        vim.cmd('silent write')
      end)
    end
  end
  if proposal.applied then
    proposal.applied = nil
    append('_reverted_\n')
  end
  feedback('rejected', nil)
end

function M.status()
  if not M.connect() then
    return
  end
  rpc.request('status', vim.empty_dict(), function(err, r)
    if err then
      notify('status failed: ' .. err.message, vim.log.levels.WARN)
      return
    end
    local build = val(r.build) or {}
    notify(string.format('build %s (%d diagnostics) · model %s · arm %s · server %s',
      val(build.status) or 'unknown', #(val(build.diagnostics) or {}), r.model, val(r.arm) or '?',
      r.serverVersion))
  end)
end

--- Test hooks: the current proposal and the transport (read-only use).
function M._proposal()
  return proposal
end
M.rpc = rpc

function M.setup(opts)
  M.config = vim.tbl_extend('force', M.config, opts or {})
end

return M
