#!/bin/bash
# Continue the shipped model on the GPU machine: NP GPUs (torchrun when >1), TB s of training,
# DL s deadline for the eval grid, LIMIT s hard stop. Then a small engine eval for timing.
set -x
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
NP=${NP:-1}
nvidia-smi --query-gpu=name --format=csv,noheader
if [ "$NP" -gt 1 ]; then L="python3 -m torch.distributed.run --standalone --nproc-per-node $NP"; else L=python3; fi
start=$(date +%s)
timeout ${LIMIT:-560} $L -m training.train_long_context --out /tmp/model \
  --init-from shadowkv_engine/assets/default_model --lengths ${LENGTHS:-8192,32768} \
  --stage-threshold 1.1 --lr ${LR:-6e-4} --warmup 100 --time-budget $TB --deadline $DL \
  --log-file $OUT/train.log --eval-output $OUT/eval.json --spectra-output $OUT/spectra.json \
  --eval-samples ${ES:-50} --grid-samples 20 --grid-lengths 8192,32768 > $OUT/stdout.log 2>&1
echo "train rc=$? after $(( $(date +%s) - start )) s"
tail -5 $OUT/stdout.log
ls -la /tmp/model && tar -C /tmp -cf - model | split -b 15M - $OUT/model.tar.
if [ -n "$ENGINE_SAMPLES" ]; then
  t0=$(date +%s)
  timeout ${ENGINE_LIMIT:-60} python3 -m shadowkv_engine.cli eval --device cuda --model /tmp/model \
    --attention shadowkv --split heldout --tasks passkey --answer-mode free --lengths 32k \
    --samples $ENGINE_SAMPLES --output $OUT/engine_probe.json --no-progress 2>&1 | tail -8
  echo "engine probe $(( $(date +%s) - t0 )) s"
fi
