"""Judges that need no LLM verdict: likelihood under a local model, and execution of code candidates."""
