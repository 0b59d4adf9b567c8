#!/usr/bin/env bash
# Train a recipe on several nodes with Slurm: one torchrun per node (srun), G processes per node, c10d rendezvous
# on the first node. Submit with, e.g.:
#   sbatch --nodes 2 --gres gpu:4 --ntasks-per-node 1 --cpus-per-task 32 scripts/slurm_train.sh spcl-gta5-cityscapes --data_root /data
# Arguments: the recipe, then any dass_train flags. The recipe's per-GPU batches assume its `world_size` GPUs; on
# another number of GPUs the run states the batch it trains with (`keep_batch`).
#SBATCH --job-name=dass_nb
#SBATCH --ntasks-per-node=1
#SBATCH --output=runs/slurm-%j.out
set -euo pipefail
recipe=${1:?usage: slurm_train.sh RECIPE [dass_train flags...]}; shift
gpus=${GPUS_PER_NODE:-$(nvidia-smi -L 2>/dev/null | wc -l)}
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
port=${MASTER_PORT:-29500}
cd "${SLURM_SUBMIT_DIR:-.}"
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-30}   # a log file, not a terminal: one progress line per 30 s, not one per redraw
srun --kill-on-bad-exit=1 .venv/bin/torchrun --nnodes "$SLURM_JOB_NUM_NODES" --nproc_per_node "$gpus" \
    --rdzv_backend c10d --rdzv_endpoint "$head:$port" --rdzv_id "$SLURM_JOB_ID" \
    .venv/bin/dass_train --recipe "$recipe" --out_dir "runs/$recipe-$SLURM_JOB_ID" "$@"
