// Fusion for VS Code: starts `fusion-lsp` and talks to it with vscode-languageclient.
//
// Everything else comes from the server: diagnostics with agreement counts, quick fixes
// (resolved lazily), "Fusion: explain finding", progress while a review runs, fused
// completions and inline completions (vscode-languageclient 10+ speaks LSP 3.18).
import * as vscode from "vscode";
import { ExecuteCommandRequest, LanguageClient, LanguageClientOptions, ServerOptions, TransportKind } from "vscode-languageclient/node";

let client: LanguageClient | undefined;

/** The user's fusion.* settings, leaving out unset ones so fusion.toml still applies. */
function settings(): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration("fusion");
  const result: Record<string, unknown> = {};
  for (const key of ["reviewPool", "reviewJudge", "completionPool", "reviewOnSave", "costCapUsd", "completionEnabled"]) {
    const value = config.get(key);
    if (value !== null && value !== undefined) {
      result[key] = value;
    }
  }
  return result;
}

async function review(selectionOnly: boolean): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || !client) {
    return;
  }
  const args: unknown[] = [editor.document.uri.toString()];
  if (selectionOnly && !editor.selection.isEmpty) {
    args.push(client.code2ProtocolConverter.asRange(editor.selection));
  }
  const result = await client.sendRequest(ExecuteCommandRequest.type, { command: "fusion.review", arguments: args });
  if (result && typeof result === "object" && "findings" in result) {
    vscode.window.setStatusBarMessage(`Fusion: ${(result as { findings: number }).findings} finding(s)`, 5000);
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const command = vscode.workspace.getConfiguration("fusionLsp").get<string[]>("command", ["fusion-lsp"]);
  const serverOptions: ServerOptions = {
    command: command[0],
    args: command.slice(1),
    transport: TransportKind.stdio,
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    initializationOptions: settings(),
    // Sends workspace/didChangeConfiguration with the fusion.* section when settings change.
    synchronize: { configurationSection: "fusion" },
  };
  client = new LanguageClient("fusion", "Fusion", serverOptions, clientOptions);
  context.subscriptions.push(
    vscode.commands.registerCommand("fusion.reviewFile", () => review(false)),
    vscode.commands.registerCommand("fusion.reviewSelection", () => review(true)),
  );
  await client.start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
