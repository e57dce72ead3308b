-- Replay editors/transcript.json through bactrian.nvim's transport (lua/bactrian/rpc.lua),
-- by the rules of editors/README.md. Returns the number of steps run; errors at a mismatch.
local rpc = require('bactrian.rpc')
local M = {}

local NIL = vim.NIL

local function read(path)
  local f = assert(io.open(path, 'r'))
  local data = f:read('*a')
  f:close()
  return vim.json.decode(data)
end
M.read = read

local function ref(s)
  return type(s) == 'string' and s:match('^%${(.*)}$') or nil
end

-- vim.json decodes {} and [] alike; an object is a table with a string key
local function is_object(t)
  return type(t) == 'table' and next(t) ~= nil and type(next(t)) == 'string'
end

local function subst(v, env, texts)
  local r = ref(v)
  if r then
    if r == 'any' or r:sub(1, 5) == 'save:' then
      return v
    elseif r:sub(1, 5) == 'text:' then
      return texts[r:sub(6)]
    end
    assert(env[r] ~= nil, 'unknown transcript value ${' .. r .. '}')
    return env[r]
  end
  if type(v) == 'table' then
    local out = {}
    for k, x in pairs(v) do
      out[k] = subst(x, env, texts)
    end
    return out
  end
  return v
end

local function match(expected, actual, env, where)
  local r = ref(expected)
  if r == 'any' then
    return
  elseif r and r:sub(1, 5) == 'save:' then
    env[r:sub(6)] = actual
    return
  end
  if is_object(expected) then
    assert(type(actual) == 'table', where .. ': expected an object, got ' .. vim.inspect(actual))
    for k, x in pairs(expected) do
      if not (x == NIL and actual[k] == nil) then
        match(x, actual[k], env, where .. '.' .. k)
      end
    end
  elseif type(expected) == 'table' then
    assert(type(actual) == 'table' and #actual == #expected,
      string.format('%s: expected %d elements, got %s', where, #expected, vim.inspect(actual)))
    for i, x in ipairs(expected) do
      match(x, actual[i], env, string.format('%s[%d]', where, i - 1))
    end
  elseif expected ~= actual then
    error(string.format('%s: expected %s, got %s', where, vim.inspect(expected), vim.inspect(actual)))
  end
end

-- params for the wire: an empty table is an object ({}), as the transcript writes it
local function wire(v)
  if type(v) == 'table' and next(v) == nil then
    return vim.empty_dict()
  end
  return v
end

function M.replay(path, root, socket)
  local data = read(path)
  local texts = data.texts
  local env = { root = root, client = 'bactrian.nvim' }
  local notes = {}
  rpc.close()
  local opened
  -- a raw connection: the replay drives initialize itself (its steps before it too)
  rpc.open(socket, function(err)
    opened = err or true
  end)
  assert(vim.wait(10000, function()
    return opened ~= nil
  end, 10), 'no connection')
  local saved = rpc.on_notification
  assert(opened == true, 'cannot connect: ' .. tostring(opened))
  rpc.on_notification = function(method, params)
    if method == 'aid/progress' then
      table.insert(notes, params)
    end
  end
  local n = 0
  for i, step in ipairs(data.steps) do
    local where = string.format('step %d (%s)', i - 1, step.send)
    local done, res, err = false, nil, nil
    rpc.request(step.send, wire(subst(step.params, env, texts)), function(e, r)
      done, err, res = true, e, r
    end)
    assert(vim.wait(20000, function()
      return done
    end, 10), where .. ': no answer')
    if step.error ~= nil then
      match(subst(step.error, env, texts), err, env, where .. '.error')
    else
      assert(err == nil, where .. ': error ' .. vim.inspect(err))
      match(subst(step.result, env, texts), res, env, where .. '.result')
    end
    if step.stream ~= nil then
      local spec = subst(step.stream, env, texts)
      local function stream()
        local out = {}
        for _, p in ipairs(notes) do
          if p.proposalId == spec.proposalId then
            table.insert(out, p)
          end
        end
        return out
      end
      assert(vim.wait(20000, function()
        local s = stream()
        local last = s[#s]
        return last ~= nil and (last.kind == 'final' or last.kind == 'error' or last.kind == 'cancelled')
      end, 10), where .. ': the proposal did not end')
      local s = stream()
      assert(s[1].kind == 'context' and s[#s].kind == (spec.last or 'final'),
        where .. ': stream kinds ' .. vim.inspect(vim.tbl_map(function(p)
          return p.kind
        end, s)))
      match(spec.context, s[1], env, where .. '.context')
      local text = {}
      for _, p in ipairs(s) do
        if p.kind == 'token' then
          table.insert(text, p.text)
        end
      end
      if spec.text ~= nil then
        assert(table.concat(text) == spec.text, where .. ': streamed ' .. vim.inspect(table.concat(text)))
      end
      match(spec.final, s[#s], env, where .. '.final')
    end
    n = n + 1
  end
  rpc.on_notification = saved
  rpc.close()
  return n
end

return M
