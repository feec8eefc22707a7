#!/usr/bin/env bash
# The MNIST multi-perturbation table on one lent GPU, in one command of at most 9 minutes.
#
# What it runs (every stage under a hard time limit; a stage that runs out leaves what it measured and the
# next stage still runs; the summary is written whatever happens):
#   0. preflight: nvidia-smi, torch / CUDA / package versions, the project imports (PYTHONPATH=repo, no pip);
#   a. bench/train.py on the device: seconds per batch and per epoch of every training scheme (bfloat16
#      autocast on CUDA), ratio to single-threat l_inf training (Adv_inf) in the same run; then 'max' and
#      MSD measured again side by side (two processes at once) for the slowdown of sharing the GPU;
#   b. 'max' and MSD trained at once on the MNIST training images with the literature's CNN (mnist_cnn),
#      each for as many epochs as the measured cost of (a) fits into the time left (bench/gpu_session.py
#      plan); --time-limit stops a run at a checkpoint (exit 75) if the estimate was short;
#   c. both models evaluated on the first test images, l_inf 0.3, l_1 10, l_2 2, one process per (model,
#      threat) so that a time-out keeps the threats already done; union = AND over the threats per image.
#   Then bench/gpu_session.py collect writes $OUT/session.json (device, nvidia-smi, every stage's status and
#   seconds, the bench rows, the plan, the training results, the per-image evaluation matrices, provenance),
#   $OUT/session.log, and the two models' weights ($OUT/max_model.pt, $OUT/msd_model.pt): 4 files, within
#   the 8 that come back from the device.
#
# Prepare (here, in the checkout that the device tool sends; the data travel as a git-ignored folder):
#   bash bench/gpu_session.sh --prepare      # copies the 4 MNIST IDX files (11 MB) to .gpu_carry/mnist
#                                            # and the commit to .gpu_carry/GIT_SHA (the copy has no .git)
# Then one device call (tool `run`):
#   command:   bash bench/gpu_session.sh      (the tool sets OUT)
#   carry:     [".gpu_carry"]
#   timeout_s: 600           (the script stops itself at GPU_BUDGET_S = 540 s)
# The runs live under runs/gpu_session (git-ignored, kept on a warm machine): the same command again
# resumes them (bench and plan are reused, training resumes from its checkpoints, finished evaluations are
# skipped); give it GPU_BUDGET_S = what is left.  Afterwards, here:
#   python bench/gpu_session.py table --session <files_at>/session.json --out results/mnist_gpu_table.json
#
# Sizes (environment variables; the CPU rehearsal changes only these):
#   OUT (required)           folder of the files that come back
#   GPU_BUDGET_S=540         wall-clock seconds of the whole command, from its start
#   GPU_DEVICE=cuda          torch device
#   GPU_THREADS=4            CPU threads per process
#   GPU_DATA_DIR=.gpu_carry/mnist
#   GPU_RUNS=runs/gpu_session
#   GPU_BENCH_BATCHES=20     timed batches per scheme in (a); GPU_BENCH_BATCH_SIZE=100
#   GPU_BENCH_S=90           limit of (a); GPU_CONTENTION_BATCHES=40, GPU_CONTENTION_S=45 for the side-by-side
#   GPU_TRAIN_LIMIT=60000    training images; GPU_BATCH_SIZE=100; GPU_MAX_EPOCHS=30; GPU_EPS_WARMUP=0.2
#   GPU_MODEL=mnist_cnn      the CNN of Madry et al. / Tramer & Boneh / Maini et al.
#   GPU_EVAL_S=180           seconds kept for (c); GPU_FINAL_S=25 kept for the summary
#   GPU_STARTUP_S=20         seconds a training process needs before its first step and after its last
#                            (its --time-limit is the time left minus this; the plan subtracts it too)
#   GPU_TEST_LIMIT=1000      test images; GPU_EVAL_BATCH=1000 (one batch per threat: fewer Python loops)
#   GPU_STRENGTH=eval        attacks of empirical.evaluate --strength: eval, AutoAttack's standard suite
#                            (APGD-CE, APGD-T, FAB-T, Square); apgd, the APGD pair only (labelled so)
#   GPU_SEED=0
# CPU rehearsal (tiny sizes; docs/gpu.md has the command and its log).
#
# Exit status: 0 every stage complete; 75 some stage ran out of time (partial results in session.json);
# 1 the preflight failed (no device, an import failed) or no stage produced anything.

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
PY=${PYTHON:-python3}

if [ "${1:-}" = "--prepare" ]; then
    src=${ADVTRAIN_DATA_DIR:-$ROOT/../shared/data}/mnist
    mkdir -p .gpu_carry/mnist || exit 1
    for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
        cp "$src/$f" .gpu_carry/mnist/ || { echo "--prepare: missing $src/$f (set ADVTRAIN_DATA_DIR)" >&2; exit 2; }
    done
    sha=$(git rev-parse HEAD) || exit 1
    [ -n "$(git status --porcelain --untracked-files=no)" ] && sha="$sha-dirty"
    echo "$sha" > .gpu_carry/GIT_SHA
    du -sh .gpu_carry
    echo "prepared .gpu_carry (commit $sha); carry it: [\".gpu_carry\"]"
    exit 0
fi

: "${OUT:?OUT must name the folder of the files that come back}"
T0=$(date +%s)
BUDGET=${GPU_BUDGET_S:-540}
DEADLINE=$((T0 + BUDGET))
DEVICE=${GPU_DEVICE:-cuda}
THREADS=${GPU_THREADS:-4}
DATA=${GPU_DATA_DIR:-.gpu_carry/mnist}
RUNS=${GPU_RUNS:-runs/gpu_session}
BENCH_BATCHES=${GPU_BENCH_BATCHES:-20}
BENCH_BATCH_SIZE=${GPU_BENCH_BATCH_SIZE:-100}
BENCH_S=${GPU_BENCH_S:-90}
CONT_BATCHES=${GPU_CONTENTION_BATCHES:-40}
CONT_S=${GPU_CONTENTION_S:-45}
TRAIN_LIMIT=${GPU_TRAIN_LIMIT:-60000}
BATCH_SIZE=${GPU_BATCH_SIZE:-100}
MAX_EPOCHS=${GPU_MAX_EPOCHS:-30}
EPS_WARMUP=${GPU_EPS_WARMUP:-0.2}
MODEL=${GPU_MODEL:-mnist_cnn}
EVAL_S=${GPU_EVAL_S:-180}
FINAL_S=${GPU_FINAL_S:-25}
STARTUP=${GPU_STARTUP_S:-20}
TEST_LIMIT=${GPU_TEST_LIMIT:-1000}
EVAL_BATCH=${GPU_EVAL_BATCH:-1000}
STRENGTH=${GPU_STRENGTH:-eval}
SEED=${GPU_SEED:-0}
SCHEMES="max msd"
EPS="linf=0.3,l1=10,l2=2"
THREATS="linf l2 l1"

mkdir -p "$OUT" "$RUNS" || exit 1
exec > >(tee -a "$OUT/session.log") 2>&1
TEE_PID=$!
trap 'exec 1>&- 2>&-; wait "$TEE_PID" 2>/dev/null' EXIT  # the log is complete when the script returns
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
if ! git rev-parse HEAD >/dev/null 2>&1 && [ -z "${ADVTRAIN_GIT_SHA:-}" ] && [ -f .gpu_carry/GIT_SHA ]; then
    ADVTRAIN_GIT_SHA=$(cat .gpu_carry/GIT_SHA); export ADVTRAIN_GIT_SHA
fi

left() { echo $((DEADLINE - $(date +%s))); }
log() { echo "[gpu_session +$(( $(date +%s) - T0 ))s, $(left)s left] $*"; }
# stage NAME RC SECONDS NOTE: one line of $RUNS/stages.jsonl (rc 124: killed by its time limit; call: this
# call's start, as the file keeps the stages of every call on the same runs)
stage() {
    "$PY" -c 'import json,sys; print(json.dumps({"stage": sys.argv[1], "rc": int(sys.argv[2]),
        "seconds": int(sys.argv[3]), "note": sys.argv[4], "call": int(sys.argv[5])}))' "$1" "$2" "$3" "$4" "$T0" \
        >> "$RUNS/stages.jsonl"
}
# limited SECONDS CMD...: CMD under a hard limit (SIGTERM, then SIGKILL 10 s later); its exit status
limited() { local s=$1; shift; [ "$s" -lt 1 ] && return 124; timeout -k 10 "$s" "$@"; }
collect() {
    limited $((FINAL_S > 5 ? FINAL_S - 5 : 1)) "$PY" bench/gpu_session.py collect --runs "$RUNS" --out "$OUT" \
        --budget "$BUDGET" --started "$T0" --params "device=$DEVICE" "threads=$THREADS" "data_dir=$DATA" \
        "bench_batches=$BENCH_BATCHES" "bench_batch_size=$BENCH_BATCH_SIZE" "train_limit=$TRAIN_LIMIT" \
        "batch_size=$BATCH_SIZE" "max_epochs=$MAX_EPOCHS" "eps_warmup=$EPS_WARMUP" "model=$MODEL" \
        "test_limit=$TEST_LIMIT" "eval_batch=$EVAL_BATCH" "strength=$STRENGTH" "seed=$SEED" "eps=$EPS"
}

log "start: budget ${BUDGET}s, device $DEVICE, runs $RUNS, out $OUT, commit ${ADVTRAIN_GIT_SHA:-from git}"

# ---- 0. preflight -------------------------------------------------------------------------------------
t=$(date +%s)
{ nvidia-smi 2>&1 || echo "nvidia-smi: not available (rc $?)"; } | tee "$RUNS/nvidia_smi.txt"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    [ -f "$DATA/$f" ] || { log "no $DATA/$f (bash bench/gpu_session.sh --prepare; carry .gpu_carry)"
        stage data 2 0 "missing $DATA/$f"; collect; exit 1; }
done
limited 60 "$PY" - "$DEVICE" "$RUNS/device.json" <<'EOF'
import importlib.metadata as md, json, platform, sys
device, out = sys.argv[1], sys.argv[2]
info = {"python": platform.python_version(), "executable": sys.executable, "requested_device": device}
for name in ("torch", "numpy", "scipy", "tqdm", "numba"):
    try:
        info[name] = md.version(name)
    except md.PackageNotFoundError:
        info[name] = None
import torch
info.update(cuda_available=torch.cuda.is_available(), torch_cuda=torch.version.cuda)
if torch.cuda.is_available():
    info.update(cuda_device_name=torch.cuda.get_device_name(0),
                capability=list(torch.cuda.get_device_capability(0)),
                cudnn=torch.backends.cudnn.version(), bf16_supported=torch.cuda.is_bf16_supported())
import empirical.evaluate, empirical.train  # the project from this tree (PYTHONPATH), no install
info["project_imports"] = "ok"
info["project_path"] = str(__import__("pathlib").Path(empirical.train.__file__).parent.parent)
json.dump(info, open(out, "w"), indent=2)
print(json.dumps(info))
if device.startswith("cuda") and not torch.cuda.is_available():
    sys.exit("preflight: --device cuda requested but torch sees no CUDA device")
EOF
rc=$?
stage preflight $rc $(( $(date +%s) - t )) "nvidia-smi, versions, imports"
if [ $rc -ne 0 ]; then log "preflight failed (rc $rc): stopping"; collect; exit 1; fi

# ---- a. cost of every scheme, then max and MSD side by side -------------------------------------------
common=(--batch-size "$BENCH_BATCH_SIZE" --device "$DEVICE" --threads "$THREADS" --data-dir "$DATA")
if [ -f "$RUNS/bench.json" ] && grep -q '"complete": true' "$RUNS/bench.json"; then
    log "a. bench: reusing $RUNS/bench.json"
else
    log "a. bench/train.py, every scheme, $BENCH_BATCHES batches of $BENCH_BATCH_SIZE (limit ${BENCH_S}s)"
    t=$(date +%s)
    limited "$BENCH_S" "$PY" bench/train.py --batches "$BENCH_BATCHES" "${common[@]}" --out "$RUNS/bench.json"
    rc=$?; stage bench $rc $(( $(date +%s) - t )) "bench/train.py all rows"
fi
if [ -f "$RUNS/bench_pair_max.json" ] && [ -f "$RUNS/bench_pair_msd.json" ]; then
    log "a. side-by-side bench: reusing"
else
    log "a. side by side: max and msd at once, $CONT_BATCHES batches each (limit ${CONT_S}s)"
    t=$(date +%s)
    for s in $SCHEMES; do
        limited "$CONT_S" "$PY" bench/train.py --batches "$CONT_BATCHES" "${common[@]}" --rows "$s" \
            --out "$RUNS/bench_pair_$s.json" > "$RUNS/bench_pair_$s.log" 2>&1 &
    done
    rc=0; for j in $(jobs -p); do wait "$j" || rc=$?; done
    cat "$RUNS"/bench_pair_*.log
    stage bench_pair $rc $(( $(date +%s) - t )) "bench/train.py max and msd at once"
fi

# ---- b. train max and MSD at once ---------------------------------------------------------------------
train_s=$(( $(left) - EVAL_S - FINAL_S ))
log "b. plan: ${train_s}s for training"
t=$(date +%s)
"$PY" bench/gpu_session.py plan --runs "$RUNS" --train-seconds "$train_s" --train-limit "$TRAIN_LIMIT" \
    --max-epochs "$MAX_EPOCHS" --startup "$STARTUP" --schemes $SCHEMES > "$RUNS/plan.txt"
rc=$?; cat "$RUNS/plan.txt"; stage plan $rc $(( $(date +%s) - t )) "epochs from the bench"
declare -A EPOCHS
while read -r s e; do EPOCHS[$s]=$e; done < <(grep -E '^(max|msd) [0-9]+$' "$RUNS/plan.txt")
t=$(date +%s)
for s in $SCHEMES; do
    [ -n "${EPOCHS[$s]:-}" ] || { log "no plan for $s"; continue; }
    [ -f "$RUNS/train_$s/result.json" ] && { log "b. $s: already trained"; continue; }
    limit=$(( $(left) - EVAL_S - FINAL_S ))
    [ "$limit" -lt 10 ] && { log "b. $s: no time left to train"; continue; }
    log "b. train $s: ${EPOCHS[$s]} epoch(s) of $TRAIN_LIMIT images, batch $BATCH_SIZE (time limit $((limit - STARTUP))s)"
    limited "$limit" "$PY" -m empirical.train --dataset mnist --scheme "$s" --threats linf,l1,l2 \
        --eps "$EPS" --model "$MODEL" --epochs "${EPOCHS[$s]}" --train-limit "$TRAIN_LIMIT" \
        --batch-size "$BATCH_SIZE" --eps-warmup "$EPS_WARMUP" --seed "$SEED" --device "$DEVICE" \
        --threads "$THREADS" --data-dir "$DATA" --out "$RUNS/train_$s" --time-limit $((limit > STARTUP + 1 ? limit - STARTUP : 1)) \
        --checkpoint-every 100 --quiet > "$RUNS/train_$s.log" 2>&1 &
done
rc=0; for j in $(jobs -p); do wait "$j"; r=$?; [ $r -ne 0 ] && rc=$r; done
for s in $SCHEMES; do [ -f "$RUNS/train_$s.log" ] && { echo "--- train_$s.log"; tail -n 5 "$RUNS/train_$s.log"; }; done
stage train $rc $(( $(date +%s) - t )) "empirical.train max and msd at once (75: stopped at a checkpoint)"

# ---- c. evaluation: each model against each threat --------------------------------------------------
t=$(date +%s)
eval_model() {  # eval_model SCHEME: the threats one after the other, each skipped if done
    local s=$1 w kind
    if [ -f "$RUNS/train_$s/model.pt" ]; then w="$RUNS/train_$s/model.pt"; kind=model
    elif [ -f "$RUNS/train_$s/checkpoint.pt" ]; then
        w="$RUNS/train_$s/checkpoint.pt"; kind=checkpoint
        rm -f "$RUNS"/eval_"${s}_${STRENGTH}"_checkpoint_*.json  # an earlier call may have evaluated an older one
        log "c. $s: unfinished run, evaluating its checkpoint"
    else log "c. $s: no model to evaluate"; return 1; fi
    for th in $THREATS; do
        local f="$RUNS/eval_${s}_${STRENGTH}_${kind}_$th"
        [ -f "$f.json" ] && continue
        local lim=$(( $(left) - FINAL_S ))
        limited "$lim" "$PY" -m empirical.evaluate --weights "$w" --dataset mnist --threats "$th" --eps "$EPS" \
            --strength "$STRENGTH" --test-limit "$TEST_LIMIT" --batch-size "$EVAL_BATCH" --seed "$SEED" \
            --device "$DEVICE" --threads "$THREADS" --data-dir "$DATA" --out "$f.json" --quiet > "$f.log" 2>&1
        local r=$?
        log "c. $s $th: rc $r"; [ $r -ne 0 ] && tail -n 3 "$f.log"
        [ $r -ne 0 ] && return $r
    done
    return 0
}
log "c. evaluation: $TEST_LIMIT test images, strength $STRENGTH, threats $THREATS"
for s in $SCHEMES; do eval_model "$s" & done
rc=0; for j in $(jobs -p); do wait "$j"; r=$?; [ $r -ne 0 ] && rc=$r; done
stage eval $rc $(( $(date +%s) - t )) "empirical.evaluate per model and threat"

# ---- summary ---------------------------------------------------------------------------------------
log "summary"
collect; rc=$?
log "done (collect rc $rc)"
exit $rc
