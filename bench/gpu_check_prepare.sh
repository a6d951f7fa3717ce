#!/usr/bin/env bash
# Prepare what bench/gpu_check.sh needs on a GPU machine without network, here where PyPI is
# reachable: wheels for Python 3.12 (the GPU image's) in .whl/, data in .devdata/. Both are kept
# out of git by .git/info/exclude; pass them as `carry` to the device tool. About 42 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .git/info
for d in /.whl/ /.devdata/; do grep -qx "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    transformer-lens==4.3.0 transformers==5.24.0 huggingface_hub==2.4.0 httpx2==2.16.2 httpcore2==2.16.2 \
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 gguf==0.19.0 beartype==0.23.1 fancy-einsum==0.0.3 \
    typeguard==4.6.1 sniffio==1.3.1 truststore==0.10.5 tokenizers==0.23.3
.venv/bin/python - <<'PY'
import shutil
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mcis_claims import assets, load_model

lee = assets.fetch(assets.LEE_CORPUS)
cached = Path(".devdata/cache/assets") / lee.parent.name
cached.mkdir(parents=True, exist_ok=True)
shutil.copy(lee, cached / lee.name)

arch = Path(".devdata/smollm2-arch")  # the embedded model's config and tokenizer, no weights
model = load_model("smollm2-135m")
model.hf_model.config.save_pretrained(arch)
model.tokenizer.save_pretrained(arch)

cfg = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  rope_theta=100000.0, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
torch.manual_seed(1)
LlamaForCausalLM(cfg).float().save_pretrained(".devdata/tiny-llama")  # a small model with weights on disk
model.tokenizer.save_pretrained(".devdata/tiny-llama")
PY
du -sh .whl .devdata
