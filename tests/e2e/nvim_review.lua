-- Headless Neovim runs examples/neovim/init.lua as a user would: open a file with a planted bug,
-- :FusionReview, wait for fusion diagnostics, pick the quick fix from the code action menu, :write,
-- then "Fusion: explain finding" on the other finding, which opens in a floating window.
-- Inputs come from the environment; the outcome goes to $FUSION_NVIM_OUT as JSON.
local out_path = assert(os.getenv("FUSION_NVIM_OUT"), "FUSION_NVIM_OUT is not set")
local results = { ok = false, steps = {}, messages = {}, echoed = {} }

local function finish(ok, err)
  results.ok = ok
  results.error = err and tostring(err) or nil
  local file = assert(io.open(out_path, "w"))
  file:write(vim.fn.json_encode(results))
  file:close()
  vim.cmd("qa!")
end

local function step(name)
  table.insert(results.steps, name)
end

-- Never hang the test: give up after a minute whatever happens.
vim.defer_fn(function() finish(false, "timed out at step " .. tostring(results.steps[#results.steps])) end, 60000)

-- Keep what Neovim would have shown the user.
local notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(results.messages, tostring(msg))
  return notify(msg, level, opts)
end

-- Keep what the command line showed ($/progress of the review).
local echo = vim.api.nvim_echo
vim.api.nvim_echo = function(chunks, history, opts)
  table.insert(results.echoed, table.concat(vim.tbl_map(function(c) return c[1] end, chunks), ""))
  return echo(chunks, history, opts)
end

local function float_texts()
  local texts = {}
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(win).relative ~= "" then
      local lines = vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(win), 0, -1, false)
      table.insert(texts, table.concat(lines, "\n"))
    end
  end
  return texts
end

local ok, err = pcall(function()
  vim.g.fusion_lsp = {
    cmd = vim.fn.json_decode(os.getenv("FUSION_LSP_CMD")),
    init_options = vim.fn.json_decode(os.getenv("FUSION_INIT_OPTIONS")),
  }
  vim.cmd("filetype on") -- -u NONE leaves filetype detection off; a normal init has it on
  local fusion = dofile(os.getenv("FUSION_EXAMPLE"))
  vim.cmd("edit " .. vim.fn.fnameescape(os.getenv("FUSION_FILE")))
  local bufnr = vim.api.nvim_get_current_buf()
  step("opened")

  local attached = vim.wait(20000, function()
    local client = fusion.client(bufnr)
    return client ~= nil and client.server_capabilities ~= nil and next(client.server_capabilities) ~= nil
  end, 50)
  assert(attached, "fusion-lsp did not attach to the buffer")
  step("attached")

  vim.cmd("FusionReview")
  local function fusion_diagnostics()
    return vim.tbl_filter(function(d) return d.source == "fusion" end, vim.diagnostic.get(bufnr))
  end
  assert(vim.wait(30000, function() return #fusion_diagnostics() > 0 end, 50), "no fusion diagnostics arrived")
  step("diagnostics")
  results.diagnostics = {}
  for _, d in ipairs(fusion_diagnostics()) do
    table.insert(results.diagnostics, { lnum = d.lnum, col = d.col, severity = d.severity, message = d.message })
  end

  -- Put the cursor on the most agreed finding and pick its quick fix, as from a menu.
  local first = fusion_diagnostics()[1]
  for _, d in ipairs(fusion_diagnostics()) do
    if d.severity < first.severity then first = d end
  end
  vim.api.nvim_win_set_cursor(0, { first.lnum + 1, first.col })
  local original = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  vim.ui.select = function(items, opts, on_choice)
    results.menu = vim.tbl_map(function(item) return opts.format_item(item) end, items)
    for _, item in ipairs(items) do
      if opts.format_item(item):find("^Fusion: fix") then
        results.chosen = opts.format_item(item)
        return on_choice(item)
      end
    end
    on_choice(nil)
  end
  vim.lsp.buf.code_action()
  local changed = vim.wait(15000, function()
    return not vim.deep_equal(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), original)
  end, 50)
  assert(changed, "the quick fix did not change the buffer (menu: " .. vim.inspect(results.menu) .. ")")
  step("fixed")
  vim.cmd("write")
  step("written")
  -- The edited line's finding is cleared at once; the other stays where it was.
  vim.wait(2000, function() return #fusion_diagnostics() < #results.diagnostics end, 50)
  results.after = #fusion_diagnostics()

  -- "Fusion: explain finding" on the finding that is left: the explanation opens in a float.
  local left = fusion_diagnostics()[1]
  vim.api.nvim_win_set_cursor(0, { left.lnum + 1, left.col })
  vim.ui.select = function(items, opts, on_choice)
    for _, item in ipairs(items) do
      if opts.format_item(item):find("^Fusion: explain") then
        return on_choice(item)
      end
    end
    on_choice(nil)
  end
  vim.lsp.buf.code_action()
  assert(vim.wait(15000, function() return #float_texts() > 0 end, 50), "no floating window for the explanation")
  results.floats = float_texts()
  step("explained")
end)

finish(ok, err)
