-- No sidecar answers (run by tests/editors/test_autostart.py): with start_server = false the
-- client says what to do; with start_server = true it starts the command and connects.
local b = require('bactrian')
local root = os.getenv('BACTRIAN_TEST_ROOT')
local messages = {}
vim.notify = function(msg, _)
  table.insert(messages, msg)
end
local ok, err = xpcall(function()
  vim.cmd('edit ' .. root .. '/lib/money.ml')
  b.setup({ socket = os.getenv('BACTRIAN_TEST_SOCKET'), root = root, start_server = false })
  assert(not b.connect(), 'connected with no sidecar')
  assert(messages[#messages]:find('bactrian aid is not running: start it with `bactrian aid serve`', 1, true),
    vim.inspect(messages))
  b.setup({ start_server = true, server_cmd = vim.json.decode(os.getenv('BACTRIAN_TEST_SERVE')) })
  assert(b.connect(), 'no connection after starting: ' .. vim.inspect(messages))
  b.ask('add a double function', 'buffer')
  assert(vim.wait(30000, function()
    return b._proposal().state == 'final'
  end, 10), 'no answer')
end, debug.traceback)
io.stdout:write(ok and '1 passed, 0 failed\n' or ('FAIL autostart: ' .. tostring(err) .. '\n0 passed, 1 failed\n'))
vim.cmd(ok and 'qall!' or 'cquit!')
