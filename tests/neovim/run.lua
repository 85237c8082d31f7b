-- Runs docs/neovim.md's configuration in a headless Neovim against the real
-- `logprobe dap`, the way a user would: the helper's "trace function" key on a
-- line inside `foo` with no session running (so it parks the entry and starts
-- one), then a logpoint set with require('dap').set_breakpoint(nil, nil, msg).
-- Started by scripts/check-neovim-doc.sh, which sets the variables read below.
-- Exits Neovim with status 0 when both lines were printed, 1 otherwise.

local seed_source = assert(os.getenv('SEED_SOURCE'))
local seed_binary = assert(os.getenv('SEED_BINARY'))
local dap = require('dap')

-- The doc's launch configuration asks for the program with input(); answer it.
vim.fn.input = function() return seed_binary end
-- One configuration only, so dap.continue() does not ask which one to run.
dap.configurations.go = { dap.configurations.go[1] }

local outputs = {}
local sessions_ended = 0
dap.listeners.after.event_output['logprobe-test'] = function(_, body)
  table.insert(outputs, body.output)
end
dap.listeners.after.event_terminated['logprobe-test'] = function()
  sessions_ended = sessions_ended + 1
end

local function fail(message)
  io.stderr:write('neovim test: FAILED: ' .. message .. '\noutput events:\n' .. table.concat(outputs) .. '\n')
  vim.cmd('cquit 1')
end

local function wait_for(text, ended)
  local ok = vim.wait(60000, function()
    return sessions_ended >= ended and table.concat(outputs):find(text, 1, true) ~= nil
  end, 50)
  if not ok then
    fail('no "' .. text .. '" before the session ended')
  end
  io.stdout:write('neovim test: saw "' .. text .. '"\n')
end

vim.cmd('edit ' .. vim.fn.fnameescape(seed_source))
vim.api.nvim_win_set_cursor(0, { 7, 2 }) -- `z = x + y`, inside foo
if vim.fn.maparg(' dt', 'n') == '' then
  fail('the doc does not map <leader>dt')
end
vim.api.nvim_feedkeys(' dt', 'mx', false) -- the user presses <leader>dt
wait_for('> goroutine(1): main.foo(99, 9801)', 1)

dap.set_breakpoint(nil, nil, 'x={x} y={y}')
dap.continue()
wait_for('x=99 y=9801', 2)
vim.cmd('qall!')
