#!/bin/bash
# Run on every node: NODE_RANK=0 on the first, 1 on the second, ...
#   MASTER_ADDR=node0.example NODE_RANK=0 benchmarks/launch/torchrun.sh benchmarks/cmsg/coco2014_cmsg.yaml /data/coco
# NNODES (default 2) and GPUS (default: all visible) per node; MASTER_PORT (default 29500).
set -euo pipefail
CONFIG=${1:?usage: torchrun.sh CONFIG.yaml DATA_ROOT [extra fashionbench args]}
ROOT=${2:?usage: torchrun.sh CONFIG.yaml DATA_ROOT [extra fashionbench args]}
shift 2
NNODES=${NNODES:-2}
GPUS=${GPUS:-$(nvidia-smi -L 2>/dev/null | wc -l)}
exec .venv/bin/python -m torch.distributed.run --nnodes "$NNODES" --nproc_per_node "$GPUS" \
  --node_rank "${NODE_RANK:?set NODE_RANK}" --master_addr "${MASTER_ADDR:?set MASTER_ADDR}" \
  --master_port "${MASTER_PORT:-29500}" \
  -m fashionbench.cli fit --config "$CONFIG" --config benchmarks/launch/torchrun.yaml \
  --trainer.num_nodes "$NNODES" --trainer.devices "$GPUS" --data.init_args.root "$ROOT" "$@"
