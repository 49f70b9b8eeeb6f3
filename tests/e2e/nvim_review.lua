-- Headless Neovim runs examples/neovim/init.lua as a user would: open a file with a planted bug,
-- :FusionReview, wait for fusion diagnostics, pick the quick fix from the code action menu, :write,
-- then "Fusion: explain finding" on the other finding, which opens in a floating window.
-- Inputs come from the environment; the outcome goes to $FUSION_NVIM_OUT as JSON.
local here = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h")
-- Never hang the test: give up after a minute whatever happens.
local harness = dofile(here .. "/nvim_harness.lua").start(60000)
local results, step, finish = harness.results, harness.step, harness.finish
results.echoed = {}

-- Keep what the command line showed ($/progress of the review).
local echo = vim.api.nvim_echo
vim.api.nvim_echo = function(chunks, history, opts)
  table.insert(results.echoed, table.concat(vim.tbl_map(function(c) return c[1] end, chunks), ""))
  return echo(chunks, history, opts)
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
  harness.choose("^Fusion: fix")
  vim.lsp.buf.code_action()
  local changed = vim.wait(15000, function()
    return not vim.deep_equal(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), original)
  end, 50)
  assert(changed, "the quick fix did not change the buffer (menus: " .. vim.inspect(results.choices) .. ")")
  step("fixed")
  vim.cmd("write")
  step("written")
  -- The edited line's finding is cleared at once; the other stays where it was.
  vim.wait(2000, function() return #fusion_diagnostics() < #results.diagnostics end, 50)
  results.after = #fusion_diagnostics()

  -- "Fusion: explain finding" on the finding that is left: the explanation opens in a float.
  local left = fusion_diagnostics()[1]
  vim.api.nvim_win_set_cursor(0, { left.lnum + 1, left.col })
  harness.choose("^Fusion: explain")
  vim.lsp.buf.code_action()
  assert(vim.wait(15000, function() return #harness.float_texts() > 0 end, 50), "no floating window for the explanation")
  results.floats = harness.float_texts()
  step("explained")
end)

finish(ok, err)
