-- Fusion in Neovim: fused code review and completion from `fusion-lsp`, no plugin needed.
--
-- Use it as your init.lua (nvim -u examples/neovim/init.lua file.py), or copy it into yours,
-- or load it from yours with: dofile("/path/to/examples/neovim/init.lua")
-- It needs `fusion-lsp` on PATH. Fusion is not on PyPI yet: from the checkout,
--   pip install -e ".[lsp,local]"      ([local] is the embedded completion model)
-- or: pip install "model-fusion[lsp,local] @ git+<the repository URL>"
--
-- Works on Neovim 0.7 (Debian 12) and later: vim.lsp.start where it exists (>= 0.8),
-- else vim.lsp.start_client + vim.lsp.buf_attach_client.
--
-- Completion: 'omnifunc' is set to the LSP's, so <C-x><C-o> (or <C-Space>) asks the server in
-- insert mode; on Neovim >= 0.11 completion also pops up by itself after . ( [ (the server's
-- trigger characters), and on >= 0.12 inline (ghost text) completion is on, <C-l> accepts it.
-- With no key and no fusion.toml the embedded Gemma 3 270M completes, locally.
--
-- Key maps (buffer-local, once the server is attached):
--   <leader>fr   Fusion: review file            (normal mode)
--   <leader>fr   Fusion: review selection       (visual mode)
--   <leader>fa   code actions: quick fixes, "Fusion: explain finding", review
--   ]f / [f      next / previous diagnostic
--   <C-Space>    completion from the server     (insert mode)
-- Commands: :FusionReview (or :'<,'>FusionReview for the selected lines)
--
-- A running review shows its progress in the command line; an explanation (and any message
-- longer than the command line) opens in a floating window.
--
-- Settings go to the server as initializationOptions, on top of fusion.toml in the project
-- root. Set them before this file runs, e.g.:
--   vim.g.fusion_lsp = { init_options = { reviewPool = { "openai/gpt-4o", "google/gemini-2.5-pro" },
--                                         costCapUsd = 0.05, reviewOnSave = false } }

local M = {}

local user = vim.g.fusion_lsp or {}
M.config = {
  cmd = user.cmd or { "fusion-lsp" },
  filetypes = user.filetypes or { "python", "lua", "javascript", "typescript", "go", "rust", "c", "cpp",
                                  "java", "ruby", "sh", "sql" },
  root_markers = user.root_markers or { "fusion.toml", ".git", "pyproject.toml", "package.json" },
  init_options = user.init_options or vim.empty_dict(),
  leader = user.leader or "<leader>",
}

local function root_dir(bufnr)
  local path = vim.api.nvim_buf_get_name(bufnr)
  local dir = path ~= "" and vim.fn.fnamemodify(path, ":p:h") or vim.fn.getcwd()
  for _, marker in ipairs(M.config.root_markers) do
    local found = vim.fn.findfile(marker, dir .. ";")
    if found == "" then
      found = vim.fn.finddir(marker, dir .. ";")
    end
    if found ~= "" then
      return (vim.fn.fnamemodify(found, ":p:h"):gsub("/%.git/?$", ""))
    end
  end
  return dir
end

local function fusion_client(bufnr)
  if vim.lsp.get_clients then -- Neovim >= 0.10
    return vim.lsp.get_clients({ bufnr = bufnr, name = "fusion" })[1]
  end
  for _, client in pairs(vim.lsp.buf_get_clients(bufnr)) do
    if client.name == "fusion" then
      return client
    end
  end
end

--- Ask the server to review the buffer; `first`/`last` (1-based lines) review only those lines.
function M.review(first, last)
  local bufnr = vim.api.nvim_get_current_buf()
  local args = { vim.uri_from_bufnr(bufnr) }
  if first and last then
    table.insert(args, { start = { line = first - 1, character = 0 }, ["end"] = { line = last, character = 0 } })
  end
  vim.lsp.buf_request(bufnr, "workspace/executeCommand", { command = "fusion.review", arguments = args },
    function(err, result)
      if err then
        vim.notify("Fusion review: " .. err.message, vim.log.levels.ERROR)
      elseif result and result.error == nil and result.findings ~= nil then
        vim.notify(("Fusion review: %d finding(s)"):format(result.findings), vim.log.levels.INFO)
      end -- on an error the server has already said why, in a message
    end)
end

-- $/progress in the command line: Neovim 0.7 keeps progress to itself (no statusline plugin here).
local progress_titles = {}
local function on_progress(err, result, ctx, config)
  local default = vim.lsp.handlers["$/progress"]
  if default then
    default(err, result, ctx, config)
  end
  local value = result and result.value
  if type(value) ~= "table" then
    return
  end
  local token = tostring(result.token)
  if value.kind == "begin" then
    progress_titles[token] = value.title
  end
  local title = progress_titles[token] or "Fusion"
  if value.kind == "end" then
    progress_titles[token] = nil
  end
  local percent = value.percentage and (" %d%%"):format(value.percentage) or ""
  local text = ("%s: %s%s"):format(title, value.message or (value.kind == "end" and "done" or "..."), percent)
  vim.api.nvim_echo({ { text:sub(1, math.max(vim.o.columns - 12, 20)) } }, false, {})
end

-- A message longer than the command line (an explanation, what review needs) opens in a float.
local function on_show_message(err, result, ctx, config)
  local message = result and result.message or ""
  if message:find("\n") or #message > vim.o.columns - 12 then
    local width = math.max(math.min(100, vim.o.columns - 4), 20)
    vim.lsp.util.open_floating_preview(vim.split(message, "\n", { plain = true }), "markdown", {
      border = "rounded",
      focus_id = "fusion-message",
      max_width = width,
      wrap = true,
    })
    return result
  end
  return vim.lsp.handlers["window/showMessage"](err, result, ctx, config)
end

local function enable_completion(client, bufnr)
  vim.api.nvim_buf_set_option(bufnr, "omnifunc", "v:lua.vim.lsp.omnifunc")
  vim.keymap.set("i", "<C-Space>", "<C-x><C-o>", { buffer = bufnr, desc = "Fusion: complete" })
  if vim.lsp.completion and vim.lsp.completion.enable then -- Neovim >= 0.11: pops up on trigger characters
    vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = true })
  end
  local caps = client.server_capabilities or {}
  if vim.lsp.inline_completion and caps.inlineCompletionProvider then -- Neovim >= 0.12: ghost text
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    vim.keymap.set("i", "<C-l>", function()
      if not vim.lsp.inline_completion.get() then
        return "<C-l>"
      end
    end, { buffer = bufnr, expr = true, desc = "Fusion: accept the inline completion" })
  end
end

local function on_attach(client, bufnr)
  local function map(mode, lhs, rhs, desc)
    vim.keymap.set(mode, M.config.leader .. lhs, rhs, { buffer = bufnr, desc = desc })
  end
  map("n", "fr", function() M.review() end, "Fusion: review file")
  map("x", "fr", function()
    local first, last = vim.fn.line("v"), vim.fn.line(".")
    vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<Esc>", true, false, true), "n", false)
    M.review(math.min(first, last), math.max(first, last))
  end, "Fusion: review selection")
  map("n", "fa", vim.lsp.buf.code_action, "Fusion: code actions (quick fix, explain)")
  vim.keymap.set("n", "]f", vim.diagnostic.goto_next, { buffer = bufnr })
  vim.keymap.set("n", "[f", vim.diagnostic.goto_prev, { buffer = bufnr })
  enable_completion(client, bufnr)
end

local client_id = nil -- Neovim 0.7: one client, attached to each buffer

--- Start fusion-lsp for a buffer (or attach the running one).
function M.start(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local config = {
    name = "fusion",
    cmd = M.config.cmd,
    root_dir = root_dir(bufnr),
    init_options = M.config.init_options,
    on_attach = on_attach,
    handlers = { ["$/progress"] = on_progress, ["window/showMessage"] = on_show_message },
  }
  if vim.lsp.start then
    return vim.lsp.start(config, { bufnr = bufnr })
  end
  if not client_id or not vim.lsp.get_client_by_id(client_id) then
    client_id = vim.lsp.start_client(config)
  end
  if client_id then
    vim.lsp.buf_attach_client(bufnr, client_id)
  end
  return client_id
end

M.client = fusion_client

local group = vim.api.nvim_create_augroup("fusion_lsp", { clear = true })
vim.api.nvim_create_autocmd("FileType", {
  group = group,
  pattern = M.config.filetypes,
  callback = function(args) M.start(args.buf) end,
})
vim.api.nvim_create_user_command("FusionReview", function(opts)
  if opts.range > 0 then
    M.review(opts.line1, opts.line2)
  else
    M.review()
  end
end, { range = true, desc = "Fusion: review the file or the selected lines" })

return M
