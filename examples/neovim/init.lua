-- Fusion in Neovim: fused code review and completion from `fusion-lsp`, no plugin needed.
--
-- Use it as your init.lua (nvim -u examples/neovim/init.lua file.py), or copy it into yours,
-- or load it from yours with: dofile("/path/to/examples/neovim/init.lua")
-- It needs `fusion-lsp` on PATH: pip install "model-fusion[lsp]".
--
-- Works on Neovim 0.7 (Debian 12) and later: vim.lsp.start where it exists (>= 0.8),
-- else vim.lsp.start_client + vim.lsp.buf_attach_client.
--
-- Key maps (buffer-local, once the server is attached):
--   <leader>fr   Fusion: review file            (normal mode)
--   <leader>fr   Fusion: review selection       (visual mode)
--   <leader>fa   code actions: quick fixes, "Fusion: explain finding", review
--   ]f / [f      next / previous diagnostic
-- Commands: :FusionReview (or :'<,'>FusionReview for the selected lines)
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
      elseif result and result.findings ~= nil then
        vim.notify(("Fusion review: %d finding(s)"):format(result.findings), vim.log.levels.INFO)
      end
    end)
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
