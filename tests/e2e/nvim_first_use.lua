-- Headless Neovim as a first user would start: examples/neovim/init.lua with no settings, in a folder
-- with no fusion.toml, and no key. Ask for completion at the end of a line (what the example's omnifunc
-- does), apply the top item, then :FusionReview (ruff and bandit, with no key) and keep what the editor shows about it.
-- Inputs come from the environment; the outcome goes to $FUSION_NVIM_OUT as JSON.
local here = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h")
-- Never hang the test: the model loads on a busy machine, so allow a few minutes.
local harness = dofile(here .. "/nvim_harness.lua").start(240000)
local results, step, finish, float_texts = harness.results, harness.step, harness.finish, harness.float_texts
results.log = {}

-- Keep the server's log lines, for the test's failure message.
vim.lsp.handlers["window/logMessage"] = function(_, result)
  table.insert(results.log, result.message)
end

local ok, err = pcall(function()
  vim.g.fusion_lsp = { cmd = vim.fn.json_decode(os.getenv("FUSION_LSP_CMD")) }
  vim.cmd("filetype on")
  local fusion = dofile(os.getenv("FUSION_EXAMPLE"))
  vim.cmd("edit " .. vim.fn.fnameescape(os.getenv("FUSION_FILE")))
  local bufnr = vim.api.nvim_get_current_buf()
  step("opened")

  local attached = vim.wait(30000, function()
    local client = fusion.client(bufnr)
    return client ~= nil and client.server_capabilities ~= nil and next(client.server_capabilities) ~= nil
  end, 50)
  assert(attached, "fusion-lsp did not attach to the buffer")
  step("attached")
  results.omnifunc = vim.api.nvim_buf_get_option(bufnr, "omnifunc")
  local provider = fusion.client(bufnr).server_capabilities.completionProvider or {}
  results.trigger_characters = provider.triggerCharacters

  -- The cursor at the end of the last line, as after typing it.
  local last = vim.api.nvim_buf_line_count(bufnr)
  local line = vim.api.nvim_buf_get_lines(bufnr, last - 1, last, false)[1]
  vim.api.nvim_win_set_cursor(0, { last, #line })
  local params = vim.lsp.util.make_position_params(0, "utf-16")
  local items
  results.attempts = 0
  -- The model started loading at initialize; a request that comes before it is ready gets nothing.
  while not items and results.attempts < 30 do
    results.attempts = results.attempts + 1
    local responses = vim.lsp.buf_request_sync(bufnr, "textDocument/completion", params, 30000) or {}
    for _, response in pairs(responses) do
      results.last_response = response
      local list = response.result and (response.result.items or response.result) or {}
      if #list > 0 then
        items = list
      end
    end
  end
  assert(items, "no completion items after " .. results.attempts .. " requests")
  results.completion = vim.tbl_map(function(item) return { label = item.label, detail = item.detail } end, items)
  step("completed")
  vim.lsp.util.apply_text_edits({ items[1].textEdit }, bufnr, "utf-16")
  results.completed_line = vim.api.nvim_buf_get_lines(bufnr, last - 1, last, false)[1]
  step("applied")

  -- With no key the review pool is ruff and bandit (#13): the review runs offline and says so.
  vim.cmd("FusionReview")
  local reviewed = vim.wait(60000, function()
    for _, message in ipairs(results.log) do
      if message:find("Fusion review: .* from 2 model") then
        return true
      end
    end
    return false
  end, 50)
  results.floats = float_texts()
  assert(reviewed, "the review did not finish")
  step("review ran the analysers")
end)

finish(ok, err)
