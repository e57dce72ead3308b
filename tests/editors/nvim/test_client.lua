-- bactrian.nvim against a real sidecar, in `nvim --headless` (run by tests/editors/test_nvim.py
-- on Neovim 0.7.2 and a current one). Prints "ok NAME" / "FAIL NAME: why" per test, then
-- "N passed, M failed", and exits non-zero on a failure.
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

local function text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n') .. '\n'
end

local pristine = vim.fn.readfile(root .. '/lib/money.ml')

-- every test starts from lib/money.ml as the sample has it, with no buffer on it
local function reset()
  vim.cmd('silent! %bwipeout!')
  vim.fn.writefile(pristine, root .. '/lib/money.ml')
end

local function visit(path)
  reset()
  vim.cmd('edit ' .. root .. '/' .. path)
  return vim.api.nvim_get_current_buf()
end

local function state()
  return b._proposal() and b._proposal().state
end

local function ask(prompt)
  b.ask(prompt, 'buffer')
  wait(function()
    return state() == 'final' or state() == 'failed'
  end, 'the final answer')
  assert(state() == 'final', 'the proposal ' .. tostring(state()))
end

local function fed_back(outcome)
  wait(function()
    return conv():find('_feedback: ' .. outcome .. '_', 1, true) ~= nil
  end, 'feedback ' .. outcome)
end

local function has(haystack, needle)
  return haystack:find(needle, 1, true) ~= nil
end

local tests = {}
local order = {}
local function test(name, fn)
  tests[name] = fn
  table.insert(order, name)
end

test('ask_apply_accept', function()
  local buf = visit('lib/money.ml')
  vim.api.nvim_win_set_cursor(0, { 8, 0 })
  ask('add a double function')
  local c = conv()
  assert(has(c, '## add a double function'), c)
  assert(has(c, '_context: lib/money.ml (current)'), c)
  assert(has(c, '```diff'), c)
  assert(has(c, '+let double t = t * 2'), c)
  assert(not has(text(buf), 'let double'))
  b.preview()
  local d = vim.fn.bufnr('bactrian://diff')
  assert(vim.api.nvim_buf_get_option(d, 'filetype') == 'diff')
  local diff = table.concat(vim.api.nvim_buf_get_lines(d, 0, -1, false), '\n')
  assert(has(diff, 'diff --git a/lib/money.ml b/lib/money.ml') and has(diff, '+let double t = t * 2'), diff)
  vim.cmd('close')
  vim.api.nvim_set_current_buf(buf)
  b.apply()
  wait(function()
    return b._proposal().applied ~= nil
  end, 'the apply')
  assert(has(text(buf), 'let neg t = -t\nlet double t = t * 2\n'), text(buf))
  assert(vim.api.nvim_buf_get_option(buf, 'modified'))
  local disk = table.concat(vim.fn.readfile(root .. '/lib/money.ml'), '\n')
  assert(not has(disk, 'let double'), 'apply wrote the file')
  assert(has(conv(), '_applied to lib/money.ml (exact)'), conv())
  b.accept()
  fed_back('accepted')
end)

test('edited_then_accepted', function()
  local buf = visit('lib/money.ml')
  ask('add a double function')
  b.apply()
  wait(function()
    return b._proposal().applied ~= nil
  end, 'the apply')
  vim.api.nvim_buf_set_lines(buf, -1, -1, false, { 'let triple t = t * 3' })
  b.accept()
  fed_back('edited')
end)

test('reject_reverts', function()
  local buf = visit('lib/money.ml')
  local before = text(buf)
  ask('add a double function')
  b.apply()
  wait(function()
    return b._proposal().applied ~= nil
  end, 'the apply')
  assert(text(buf) ~= before)
  b.reject()
  assert(text(buf) == before, text(buf))
  fed_back('rejected')
end)

test('no_change_is_never_applied', function()
  local buf = visit('lib/money.ml')
  local before = text(buf)
  ask('add zero if it is not already there')
  assert(has(conv(), '_no change proposed'), conv())
  b.apply()
  fed_back('rejected')
  assert(text(buf) == before)
  assert(not vim.api.nvim_buf_get_option(buf, 'modified'))
  assert(b._proposal().applied == nil)
  assert(not has(conv(), '_applied to'), conv())
end)

test('apply_to_file_not_open', function()
  reset()
  b.ask('add a double function', 'workspace')
  wait(function()
    return state() == 'final'
  end, 'the final answer')
  b.apply()
  wait(function()
    return b._proposal().applied ~= nil
  end, 'the apply')
  local disk = table.concat(vim.fn.readfile(root .. '/lib/money.ml'), '\n')
  assert(has(disk, 'let double t = t * 2'), disk)
  b.reject()
  disk = table.concat(vim.fn.readfile(root .. '/lib/money.ml'), '\n')
  assert(not has(disk, 'let double'), disk)
  fed_back('rejected')
end)

test('append_to_the_conversation', function()
  visit('lib/money.ml')
  ask('add zero if it is not already there')
  local c = vim.fn.bufnr('bactrian://conversation')
  vim.api.nvim_buf_set_lines(c, -1, -1, false, { 'add a double function' })
  vim.cmd('BactrianSend')
  wait(function()
    return state() == 'final' and has(conv(), '+let double t = t * 2')
  end, 'the second answer')
  assert(has(conv(), '## add a double function'), conv())
end)

test('ask_about_lines', function()
  visit('lib/money.ml')
  local sent = nil
  local request = b.rpc.request
  b.rpc.request = function(method, params, cb)
    if method == 'propose' then
      sent = params
    end
    return request(method, params, cb)
  end
  vim.cmd('8,9BactrianAsk add a double function')
  b.rpc.request = request
  wait(function()
    return state() == 'final'
  end, 'the final answer')
  assert(sent.file.path == 'lib/money.ml', vim.inspect(sent))
  assert(sent.selection.start.line == 7 and sent.selection.start.character == 0, vim.inspect(sent))
  assert(sent.selection['end'].line == 8, vim.inspect(sent.selection))
  assert(sent.selection['end'].character == #'let sum ms = List.fold_left add zero ms')
  assert(sent.cursor == nil)
end)

test('cancel_running', function()
  visit('lib/money.ml')
  b.ask('slow: add a double function', 'buffer')
  wait(function()
    return has(conv(), 'Add')
  end, 'a token')
  b.cancel()
  wait(function()
    return state() == 'cancelled'
  end, 'the cancel')
  assert(has(conv(), '_cancelled_'))
end)

test('status_shows_arm', function()
  messages = {}
  b.status()
  wait(function()
    return #messages > 0 and has(messages[#messages], 'model')
  end, 'the status')
  assert(has(messages[#messages], 'model scripted · arm default'), messages[#messages])
end)

test('checkhealth', function()
  vim.cmd('checkhealth bactrian')
  local out = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  assert(has(out, 'connected to bactrian aid'), out)
  assert(has(out, 'model scripted, strategy'), out)
  vim.cmd('bwipeout!')
end)

test('transcript', function()
  package.path = os.getenv('BACTRIAN_TEST_LUA') .. '/?.lua;' .. package.path
  local t = require('transcript')
  local path = os.getenv('BACTRIAN_TEST_TRANSCRIPT')
  local n = t.replay(path, root, os.getenv('BACTRIAN_TEST_SOCKET'))
  assert(n == #t.read(path).steps)
end)

local only = os.getenv('BACTRIAN_TEST_ONLY')
local passed, failed = 0, 0
for _, name in ipairs(order) do
  if not only or only == name then
    local ok, err = xpcall(tests[name], debug.traceback)
    if ok then
      passed = passed + 1
      io.stdout:write('ok ' .. name .. '\n')
    else
      failed = failed + 1
      io.stdout:write('FAIL ' .. name .. ': ' .. tostring(err) .. '\n')
    end
  end
end
io.stdout:write(string.format('%d passed, %d failed\n', passed, failed))
vim.cmd(failed == 0 and 'qall!' or 'cquit!')
