-- Shared by the headless Neovim scripts: the outcome goes to $FUSION_NVIM_OUT as JSON, with the
-- steps reached, what Neovim showed the user (vim.notify, floating windows), and a deadline so a
-- test never hangs. Load it with dofile(); start(timeout_ms) returns the harness.
local H = {}

function H.start(timeout_ms)
  local out_path = assert(os.getenv("FUSION_NVIM_OUT"), "FUSION_NVIM_OUT is not set")
  local harness = { results = { ok = false, steps = {}, messages = {}, floats = {} } }
  local results = harness.results

  function harness.finish(ok, err)
    results.ok = ok
    results.error = err and tostring(err) or nil
    local file = assert(io.open(out_path, "w"))
    file:write(vim.fn.json_encode(results))
    file:close()
    vim.cmd("qa!")
  end

  function harness.step(name)
    table.insert(results.steps, name)
  end

  --- The text of every floating window.
  function harness.float_texts()
    local texts = {}
    for _, win in ipairs(vim.api.nvim_list_wins()) do
      if vim.api.nvim_win_get_config(win).relative ~= "" then
        local lines = vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(win), 0, -1, false)
        table.insert(texts, table.concat(lines, "\n"))
      end
    end
    return texts
  end

  --- Answer the next vim.ui.select (the code action menu) with the first item matching `pattern`.
  --- Each menu shown and the item picked go to results.choices.
  results.choices = {}
  function harness.choose(pattern)
    vim.ui.select = function(items, opts, on_choice)
      local choice = { menu = vim.tbl_map(function(item) return opts.format_item(item) end, items) }
      table.insert(results.choices, choice)
      for _, item in ipairs(items) do
        if opts.format_item(item):find(pattern) then
          choice.chosen = opts.format_item(item)
          return on_choice(item)
        end
      end
      on_choice(nil)
    end
  end

  vim.defer_fn(function()
    harness.finish(false, "timed out at step " .. tostring(results.steps[#results.steps]))
  end, timeout_ms)
  local notify = vim.notify
  vim.notify = function(msg, level, opts)
    table.insert(results.messages, tostring(msg))
    return notify(msg, level, opts)
  end
  return harness
end

return H
