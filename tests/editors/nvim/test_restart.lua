-- The sidecar restarts mid-answer (run by tests/editors/test_restart.py, which kills it and
-- starts a new one on the same socket once this writes $BACTRIAN_TEST_SYNC/streaming): the
-- in-flight answer fails with a retryable message, the client reconnects by itself and says
-- so once, and the next ask succeeds.
local b = require('bactrian')
local root = os.getenv('BACTRIAN_TEST_ROOT')
b.setup({ socket = os.getenv('BACTRIAN_TEST_SOCKET'), root = root, start_server = false })
local messages = {}
vim.notify = function(msg, _)
  table.insert(messages, msg)
end

local function conv()
  local buf = vim.fn.bufnr('bactrian://conversation')
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
end

local function wait(pred, what, ms)
  if not vim.wait(ms or 30000, pred, 10) then
    error('timed out waiting for ' .. what .. '; conversation:\n' .. conv(), 0)
  end
end

local function has(h, n)
  return h:find(n, 1, true) ~= nil
end

local function state()
  return b._proposal() and b._proposal().state
end

local sync = os.getenv('BACTRIAN_TEST_SYNC')

local function feedback_scenario()
  vim.cmd('edit ' .. root .. '/lib/money.ml')
  b.ask('add a double function', 'buffer')
  wait(function()
    return state() == 'final'
  end, 'the final answer')
  b.apply()
  wait(function()
    return b._proposal().applied ~= nil
  end, 'the apply')
  vim.fn.writefile({}, sync .. '/applied')
  wait(function()
    return vim.loop.fs_stat(sync .. '/frozen') ~= nil
  end, 'the frozen sidecar', 60000)
  b.accept() -- in flight: the sidecar is stopped (SIGSTOP) and answers nothing
  vim.wait(300)
  vim.fn.writefile({}, sync .. '/sent')
  wait(function()
    return has(conv(), '_feedback: accepted_')
  end, 'the feedback sent again after the reconnect', 30000)
  assert(b.rpc.connected())
end

local ok, err = xpcall(function()
  if os.getenv('BACTRIAN_TEST_SCENARIO') == 'feedback' then
    feedback_scenario()
    return
  end
  vim.cmd('edit ' .. root .. '/lib/money.ml')
  local buf = vim.api.nvim_get_current_buf()
  b.ask('slow: add a double function', 'buffer')
  local first = b.rpc.server.serverId
  wait(function()
    return has(conv(), 'Add')
  end, 'a token')
  vim.fn.writefile({}, os.getenv('BACTRIAN_TEST_SYNC') .. '/streaming')
  wait(function()
    return state() == 'failed'
  end, 'the in-flight request to fail', 30000)
  assert(has(conv(), '**interrupted:** the sidecar restarted while answering'), conv())
  assert(has(conv(), ':BactrianRetry'), conv())
  wait(function()
    return b.rpc.connected()
  end, 'the reconnect', 30000)
  assert(b.rpc.server.serverId ~= first, 'the same server answered')
  b.ask('add a double function', 'buffer')
  wait(function()
    return state() == 'final'
  end, 'the final answer')
  b.apply()
  wait(function()
    return b._proposal().applied ~= nil
  end, 'the apply')
  assert(has(table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n'), 'let double t = t * 2'))
  b.accept()
  wait(function()
    return has(conv(), '_feedback: accepted_')
  end, 'feedback')
  local told = 0
  for _, m in ipairs(messages) do
    if has(m, 'reconnected to bactrian aid') then
      told = told + 1
    end
  end
  assert(told == 1, 'told the user ' .. told .. ' times: ' .. vim.inspect(messages))
end, debug.traceback)
if ok then
  io.stdout:write('1 passed, 0 failed\n')
  vim.cmd('qall!')
else
  io.stdout:write('FAIL restart: ' .. tostring(err) .. '\n0 passed, 1 failed\n')
  vim.cmd('cquit!')
end
