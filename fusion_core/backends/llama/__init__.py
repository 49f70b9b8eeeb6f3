"""Every piece of the in-process llama.cpp backend, in one folder.

- ``backend``: the ``local/NAME`` and ``gguf:PATH`` backend the pool and the judge call;
- ``batch``: several samples of one model decoded together in one multi-sequence batch;
- ``score``: likelihood scoring of many candidates in one batch;
- ``memory``: loading, the memory estimate, and sharing one copy of the weights;
- ``prompts``: chat templates, instruct detection and stop strings;
- ``models``: the embedded model and the ``[local.models]`` catalogue;
- ``hardware``: core counts, thread defaults and GPU offload.

Nothing here is imported until a local model is used, so ``fusion --help`` and remote-only
runs never load llama_cpp.
"""
