-- :Bactrian* commands of the bactrian AID client (lua/bactrian/init.lua does the work).
if vim.g.loaded_bactrian then
  return
end
vim.g.loaded_bactrian = 1

local function cmd(name, fn, opts)
  vim.api.nvim_create_user_command(name, fn, opts or {})
end

local function b()
  return require('bactrian')
end

cmd('BactrianAsk', function(o)
  b().ask(o.args, o.range > 0 and 'region' or 'buffer', { o.line1, o.line2 })
end, { nargs = '+', range = true, desc = 'Ask bactrian about the selection or buffer' })
cmd('BactrianAskWorkspace', function(o)
  b().ask(o.args, 'workspace')
end, { nargs = '+', desc = 'Ask bactrian about the workspace' })
cmd('BactrianSend', function()
  b().send()
end, { desc = 'Send the prompt typed at the end of the conversation' })
cmd('BactrianRetry', function()
  b().retry()
end, { desc = 'Ask the last question again' })
cmd('BactrianCancel', function()
  b().cancel()
end, { desc = 'Cancel the running request' })
cmd('BactrianPreview', function()
  b().preview()
end, { desc = 'Preview the proposed diff' })
cmd('BactrianApply', function()
  b().apply()
end, { desc = 'Apply the proposal to buffers' })
cmd('BactrianAccept', function()
  b().accept()
end, { desc = 'Accept the applied proposal' })
cmd('BactrianReject', function()
  b().reject()
end, { desc = 'Reject (and undo) the proposal' })
cmd('BactrianStatus', function()
  b().status()
end, { desc = 'Show build status, model and experiment arm' })
cmd('BactrianShow', function()
  b().show()
end, { desc = 'Show the conversation' })
cmd('BactrianConnect', function()
  b().connect()
end, { desc = 'Connect to the bactrian aid sidecar' })
